package scenario

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/klite/klite/bench/internal/report"
)

// agedBroker returns the long-lived broker for one run of name, aged first
// when it has not taken Cfg.AgeBytes yet: producers as fast as they go,
// acks=all, into a topic that stays (its segments are the state a broker
// that has been running for a while carries). The fill's figures go to
// res's notes.
func agedBroker(ctx context.Context, env *Env, name string, res *Result) (*Broker, error) {
	if env.LongLived == nil {
		return nil, fmt.Errorf("scenario: %s runs on the long-lived broker and the harness set none", name)
	}
	b, err := env.LongLived.Broker(ctx, name)
	if err != nil {
		return nil, err
	}
	err = env.LongLived.age(func() error {
		if env.Cfg.AgeBytes <= 0 {
			return nil
		}
		if err := checkSpace(env.ScratchDir, float64(env.Cfg.AgeBytes)); err != nil {
			return fmt.Errorf("aging fill: %w", err)
		}
		st, err := runLoad(ctx, env, loadSpec{
			label: progressLabel(name+" aging fill", env), addr: b.Addr, topic: topicName("aging-fill", env),
			partitions: env.Cfg.Partitions, acks: "all", producers: env.Cfg.Producers, brokerPID: b.PID,
			stopAfterBytes: env.Cfg.AgeBytes,
		})
		if err != nil {
			return fmt.Errorf("aging fill: %w", err)
		}
		note := fmt.Sprintf("round %d: the broker was aged first with %s of acks=all records (%d-byte, %d producers, %d partitions, kept) at %s",
			env.Round, report.Format(report.Bytes, float64(st.totalBytes)), env.Cfg.RecordSize, env.Cfg.Producers, env.Cfg.Partitions,
			report.Format(report.BytesPerSec, float64(st.prodBytes)/st.window.Seconds()))
		if b.PID > 0 && st.prodBytes > 0 {
			note += fmt.Sprintf(", %s", report.Format(report.CPUPerGB, st.brokerCPU.Seconds()/(float64(st.prodBytes)/1e9)))
		}
		res.Notes = append(res.Notes, note)
		res.Notes = append(res.Notes, errorNotes(st)...)
		return nil
	})
	if err != nil {
		b.Stop() // per run (-long-lived off) the broker is this run's; shared, Stop does nothing
		return nil, err
	}
	return b, nil
}

// dropTopic deletes a measured topic from the long-lived broker, so its
// disk use stays bounded over many steps and rounds (klite frees a WAL
// segment once every partition in it is deleted or past retention). A
// failure is a note, not a failed run.
func dropTopic(ctx context.Context, addr, topic string, res *Result) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("klite-bench-admin"))
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, topicReadyTimeout)
		var resp kadm.DeleteTopicResponses
		resp, err = kadm.NewClient(cl).DeleteTopics(ctx, topic)
		if err == nil {
			err = resp.Error()
		}
		cancel()
		cl.Close()
	}
	if err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("could not delete topic %s after its step: %v", topic, err))
	}
}

// agedCPU: broker CPU per GB with acks=all and acks=1 on the long-lived
// broker, next to the same round's fresh-broker figures.
type agedCPU struct{}

// agedCPUSteps are the acks agedCPU measures, in order; keys are suffixed
// with the acks ("all", "1").
var agedCPUSteps = []struct{ acks, fresh string }{{"all", "produce-acks-all"}, {"1", "produce-acks-1"}}

func (s *agedCPU) Name() string { return "produce-aged-cpu" }

func (s *agedCPU) Describe(cfg Config) string {
	return fmt.Sprintf("Broker CPU per GB on the long-lived broker (see produce-sweep; it has taken the aging fill, "+
		"the sweep and the steady run before this in the round): %d producer clients as fast as they go with acks=all, then "+
		"acks=1 (%d-byte records, one fresh topic each, deleted after), as produce-acks-all and produce-acks-1 do on a fresh "+
		"broker. The ratio rows divide by the fresh broker's CPU-s/GB of the same round; a broker that has been running for "+
		"a while should cost no more per byte than a new one.", cfg.Producers, cfg.RecordSize)
}

func (s *agedCPU) Settings(cfg Config) []report.KV {
	return append(loadSettings(cfg, "all, then 1"), report.KV{Key: "broker", Value: longLivedSetting(cfg)})
}

func (s *agedCPU) Close() error { return nil }

func (s *agedCPU) Run(ctx context.Context, env *Env) (res Result, err error) {
	b, err := agedBroker(ctx, env, s.Name(), &res)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	if env.Brokers.Managed() == nil {
		res.Notes = append(res.Notes, "external broker (-brokers): the fresh figures are the same broker's earlier runs, not a fresh broker's")
	}
	for _, step := range agedCPUSteps {
		topic := topicName("aged-cpu-acks-"+step.acks, env)
		st, err := runLoad(ctx, env, loadSpec{
			label: progressLabel(s.Name()+" acks="+step.acks, env), addr: b.Addr, topic: topic, partitions: env.Cfg.Partitions,
			acks: step.acks, producers: env.Cfg.Producers, warmup: env.Cfg.Warmup, duration: env.Cfg.Duration, brokerPID: b.PID,
		})
		dropTopic(ctx, b.Addr, topic, &res) // also after a failed run: the broker is shared
		if err != nil {
			return res, fmt.Errorf("acks=%s: %w", step.acks, err)
		}
		sfx, lbl := "-"+step.acks, ", acks="+step.acks
		res.Metrics = append(res.Metrics, report.Metric{Key: "throughput" + sfx, Label: "throughput" + lbl, Unit: report.BytesPerSec,
			Value: float64(st.prodBytes) / st.window.Seconds(), Limits: []report.Limit{diskSeqWrite(env.Limits)}})
		res.Notes = append(res.Notes, errorNotes(st)...)
		if b.PID <= 0 {
			res.Notes = append(res.Notes, "no broker pid: CPU not measured (give -broker-pid with -brokers)")
			continue
		}
		aged := st.brokerCPU.Seconds() / (float64(st.prodBytes) / 1e9)
		res.Metrics = append(res.Metrics, report.Metric{Key: "cpu-per-gb" + sfx, Label: "broker CPU per GB, long-lived" + lbl,
			Unit: report.CPUPerGB, Value: aged})
		fresh, ok := env.FreshCPUPerGB[step.acks]
		if !ok || fresh <= 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("round %d: no fresh-broker figure for acks=%s (%s did not run this round)", env.Round, step.acks, step.fresh))
			continue
		}
		res.Metrics = append(res.Metrics,
			report.Metric{Key: "fresh-cpu-per-gb" + sfx, Label: "broker CPU per GB, fresh broker (" + step.fresh + ")", Unit: report.CPUPerGB, Value: fresh},
			report.Metric{Key: "cpu-ratio" + sfx, Label: "long-lived / fresh CPU per GB" + lbl, Unit: report.Count, Value: aged / fresh},
		)
	}
	return res, nil
}

// longLivedSetting describes the broker the long-lived scenarios share.
func longLivedSetting(cfg Config) string {
	switch cfg.LongLivedScope {
	case "off":
		return fmt.Sprintf("a fresh klite per run, aged with %s first (-long-lived off)", report.Format(report.Bytes, float64(cfg.AgeBytes)))
	case "run":
		return fmt.Sprintf("one klite for the whole benchmark, aged with %s first (-long-lived run)", report.Format(report.Bytes, float64(cfg.AgeBytes)))
	}
	return fmt.Sprintf("one klite per round shared by produce-sweep, produce-steady and produce-aged-cpu, aged with %s first, "+
		"stopped after the last of them (-long-lived round)", report.Format(report.Bytes, float64(cfg.AgeBytes)))
}

// spareBytes is the free space a long-lived step leaves on the WAL's disk
// beyond what it writes: the machine is shared, and a full disk fails more
// than this benchmark.
const spareBytes = 2e9

// checkSpace fails when the disk under dir has less free space than need
// bytes plus spareBytes: a step that would fill the disk is refused with
// the figures, not run.
func checkSpace(dir string, need float64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("scenario: free space of %s: %w", dir, err)
	}
	if free := float64(st.Bavail) * float64(st.Bsize); free < need+spareBytes {
		return fmt.Errorf("scenario: %s has %s free; the step writes about %s and leaves %s spare: free some space or lower the rate or duration",
			dir, report.Format(report.Bytes, free), report.Format(report.Bytes, need), report.Format(report.Bytes, spareBytes))
	}
	return nil
}
