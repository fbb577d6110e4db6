package group

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/vfs"
)

// BenchmarkGroupMemory reports the heap one group created by a standalone
// offset commit (one partition) costs: the figure behind -group-max-count.
func BenchmarkGroupMemory(b *testing.B) {
	const n = 20_000
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c, err := Open(Config{Dir: "/groups", FS: vfs.NewMemFS(), Topics: func(string) (int32, bool) { return 4, true }, Logger: zerolog.Nop()})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		done := make(chan *kmsg.OffsetCommitResponse, 1)
		for i := range n {
			c.OffsetCommit(commitReq("group-"+strconv.Itoa(i), "", -1, 5), func(r *kmsg.OffsetCommitResponse) { done <- r })
			if code := (<-done).Topics[0].Partitions[0].ErrorCode; code != 0 {
				b.Fatal(code)
			}
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/group")
		c.Close()
		b.StartTimer()
	}
}
