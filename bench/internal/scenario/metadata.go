package scenario

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/bench/internal/proc"
	"github.com/klite/klite/bench/internal/report"
)

// metadataScale: what creating topics costs on a broker that already holds
// many partitions, against the same creates on an empty broker. Bytes are
// the broker's write_bytes from /proc/<pid>/io (what it sent to the block
// layer), a size rather than a timing, so their ratio holds on a noisy
// machine.
type metadataScale struct {
	// partitions held before the measured creates (0: 300k, 20k with -quick).
	partitions int
}

const (
	metaScalePartitions      = 300_000
	metaScalePartitionsQuick = 20_000
	// metaScaleTopicParts is the size of the topics that hold them; big
	// topics keep the fill cheap even where every create rewrites all
	// metadata.
	metaScaleTopicParts = 10_000
	metaScaleCreates    = 100 // topics created per measured step
	metaScaleClients    = 10  // concurrent CreateTopics clients
)

func (s *metadataScale) Name() string { return "metadata-scale" }

func (s *metadataScale) held(cfg Config) int {
	switch {
	case s.partitions > 0:
		return s.partitions
	case cfg.Quick:
		return metaScalePartitionsQuick
	}
	return metaScalePartitions
}

func (s *metadataScale) Describe(cfg Config) string {
	return fmt.Sprintf("Metadata at scale: on a broker holding %d partitions (topics of %d), and on an empty one, "+
		"%d topics are created by one Metadata request that auto-creates them all, then %d by CreateTopics one at a time, "+
		"then %d by CreateTopics from %d clients at once. Time is wall time per step; bytes are the broker's write_bytes "+
		"from /proc/<pid>/io over the step (WAL included: it is idle).", s.held(cfg), metaScaleTopicParts, metaScaleCreates,
		metaScaleCreates, metaScaleCreates, metaScaleClients)
}

func (s *metadataScale) Settings(cfg Config) []report.KV {
	return []report.KV{{Key: "partitions held", Value: fmt.Sprint(s.held(cfg))}, {Key: "topics per step", Value: fmt.Sprint(metaScaleCreates)}}
}

func (s *metadataScale) Close() error { return nil }

// metaSteps name the measured steps, in order.
var metaSteps = []string{"auto-create", "create-serial", "create-topics"}

// metaStep is one measured step.
type metaStep struct {
	took  time.Duration
	bytes int64
}

func (s *metadataScale) Run(ctx context.Context, env *Env) (Result, error) {
	var res Result
	m := env.Brokers.Managed()
	if m == nil {
		return res, ErrNeedsManaged
	}
	held := s.held(env.Cfg)
	empty, err := s.measure(ctx, m, 0)
	if err != nil {
		return res, err
	}
	full, err := s.measure(ctx, m, held)
	if err != nil {
		return res, err
	}
	for i, step := range metaSteps {
		label := map[string]string{"auto-create": "one Metadata request auto-creating", "create-serial": "CreateTopics one at a time of",
			"create-topics": "concurrent CreateTopics of"}[step]
		res.Metrics = append(res.Metrics,
			report.Metric{Key: step + "-time", Label: fmt.Sprintf("%s %d topics, beside %d partitions", label, metaScaleCreates, held), Unit: report.Seconds, Value: full[i].took.Seconds()},
			report.Metric{Key: step + "-bytes", Label: fmt.Sprintf("bytes written by it, beside %d partitions", held), Unit: report.Bytes, Value: float64(full[i].bytes)},
			report.Metric{Key: step + "-time-empty", Label: fmt.Sprintf("%s %d topics, empty broker", label, metaScaleCreates), Unit: report.Seconds, Value: empty[i].took.Seconds()},
			report.Metric{Key: step + "-bytes-empty", Label: "bytes written by it, empty broker", Unit: report.Bytes, Value: float64(empty[i].bytes)},
		)
		if empty[i].bytes > 0 {
			res.Metrics = append(res.Metrics, report.Metric{Key: step + "-bytes-ratio",
				Label: fmt.Sprintf("bytes per create beside %d partitions / on an empty broker", held), Unit: report.Count,
				Value: float64(full[i].bytes) / float64(empty[i].bytes)})
		}
	}
	return res, nil
}

// measure starts a broker, fills it with held partitions and times the two
// steps.
func (s *metadataScale) measure(ctx context.Context, m *Managed, held int) ([3]metaStep, error) {
	var out [3]metaStep
	dir := m.NewWALDir(s.Name())
	// No -max-partitions: its default holds this, and brokers from before
	// the flag run the scenario too.
	p, err := m.StartWith(ctx, dir, []string{"-max-topic-partitions", fmt.Sprint(metaScaleTopicParts)}, nil)
	if err != nil {
		m.Cleanup(dir)
		return out, err
	}
	defer func() {
		if _, err := p.Stop(syscall.SIGTERM); err == nil {
			m.Cleanup(dir)
		}
	}()
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr), kgo.ClientID("klite-bench-meta"), kgo.RequestTimeoutOverhead(5*time.Minute))
	if err != nil {
		return out, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for i := 0; i*metaScaleTopicParts < held; i++ {
		n := min(metaScaleTopicParts, held-i*metaScaleTopicParts)
		if err := createOne(ctx, adm, fmt.Sprintf("held-%d", i), int32(n)); err != nil {
			return out, err
		}
	}

	step := func(fn func() error) (metaStep, error) {
		b0, err := proc.WriteBytes(p.PID)
		if err != nil {
			return metaStep{}, err
		}
		t0 := time.Now()
		if err := fn(); err != nil {
			return metaStep{}, err
		}
		took := time.Since(t0)
		b1, err := proc.WriteBytes(p.PID)
		return metaStep{took: took, bytes: b1 - b0}, err
	}
	// Step 1: one Metadata request naming metaScaleCreates unknown topics.
	out[0], err = step(func() error {
		req := kmsg.NewPtrMetadataRequest()
		req.AllowAutoTopicCreation = true
		for i := range metaScaleCreates {
			t := kmsg.NewMetadataRequestTopic()
			t.Topic = kmsg.StringPtr(fmt.Sprintf("auto-%d", i))
			req.Topics = append(req.Topics, t)
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		for _, t := range resp.Topics {
			if err := kerr.ErrorForCode(t.ErrorCode); err != nil || len(t.Partitions) == 0 {
				return fmt.Errorf("auto-create %s: %v, %d partitions", *t.Topic, err, len(t.Partitions))
			}
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	// Step 2: metaScaleCreates CreateTopics, each after the last: one
	// metadata write each, so its bytes do not depend on timing.
	out[1], err = step(func() error {
		for i := range metaScaleCreates {
			if err := createOne(ctx, adm, fmt.Sprintf("serial-%d", i), 1); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	// Step 3: metaScaleCreates CreateTopics from metaScaleClients clients.
	out[2], err = step(func() error {
		var wg sync.WaitGroup
		errs := make(chan error, metaScaleClients)
		for c := range metaScaleClients {
			wg.Go(func() {
				ccl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr), kgo.ClientID(fmt.Sprintf("klite-bench-meta%d", c)), kgo.RequestTimeoutOverhead(5*time.Minute))
				if err != nil {
					errs <- err
					return
				}
				defer ccl.Close()
				cadm := kadm.NewClient(ccl)
				for i := c; i < metaScaleCreates; i += metaScaleClients {
					if err := createOne(ctx, cadm, fmt.Sprintf("created-%d", i), 1); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	})
	return out, err
}

func createOne(ctx context.Context, adm *kadm.Client, name string, parts int32) error {
	resp, err := adm.CreateTopic(ctx, parts, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create %s (%d partitions): %w", name, parts, err)
	}
	return nil
}
