package metrics

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/group"
	"github.com/klite/klite/storage"
)

// BenchmarkScrape is one scrape (collect and encode in the text format)
// of a broker with 1,000 or 100,000 partitions in 100-partition topics,
// one group with a committed offset on every partition (so
// klite_group_lag meets its default cap at 100k). It reports the body size.
func BenchmarkScrape(b *testing.B) {
	for _, parts := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("partitions=%d", parts), func(b *testing.B) {
			dir := b.TempDir()
			st, err := storage.Open(storage.Config{Dir: filepath.Join(dir, "wal"), Shards: 2, Logger: zerolog.Nop()})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			const perTopic = 100
			req := kmsg.NewPtrOffsetCommitRequest()
			req.Version, req.Group, req.Generation = 8, "g", -1
			for i := 0; i < parts/perTopic; i++ {
				name := fmt.Sprintf("topic-%05d", i)
				if _, err := st.CreateTopic(name, perTopic, nil); err != nil {
					b.Fatal(err)
				}
				rt := kmsg.NewOffsetCommitRequestTopic()
				rt.Topic = name
				for p := int32(0); p < perTopic; p++ {
					rp := kmsg.NewOffsetCommitRequestTopicPartition()
					rp.Partition = p
					rt.Partitions = append(rt.Partitions, rp)
				}
				req.Topics = append(req.Topics, rt)
			}
			gc, err := group.Open(group.Config{Dir: filepath.Join(dir, "groups"), Topics: func(name string) (int32, bool) {
				info, ok := st.Topic(name)
				return info.Partitions, ok
			}, TopicList: st.Topics, Logger: zerolog.Nop()})
			if err != nil {
				b.Fatal(err)
			}
			defer gc.Close()
			done := make(chan struct{})
			gc.OffsetCommit(req, func(*kmsg.OffsetCommitResponse) { close(done) })
			<-done

			s := &Server{cfg: Config{MaxLagSeries: DefaultMaxLagSeries}, reg: prometheus.NewRegistry()}
			s.SetSources(Sources{Store: st, Groups: gc})
			s.reg.MustRegister(&collector{s: s})
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				fams, err := s.reg.Gather()
				if err != nil {
					b.Fatal(err)
				}
				enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
				for _, f := range fams {
					if err := enc.Encode(f); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(buf.Len()), "body-bytes")
		})
	}
}
