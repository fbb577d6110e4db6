package scenario

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/klite/klite/bench/internal/report"
	"github.com/klite/klite/bench/internal/stats"
)

// countingLauncher hands out numbered brokers and counts starts and stops.
type countingLauncher struct{ started, stopped int }

func (c *countingLauncher) Broker(context.Context, string) (*Broker, error) {
	c.started++
	return &Broker{Addr: fmt.Sprintf("b%d", c.started), stop: func() error { c.stopped++; return nil }}, nil
}

func (c *countingLauncher) Managed() *Managed { return nil }

func TestLongLivedSharesOneBroker(t *testing.T) {
	inner := &countingLauncher{}
	l := NewLongLived(inner, false)
	ctx := context.Background()
	fills := 0
	fill := func() error { fills++; return nil }
	for i := range 3 {
		b, err := l.Broker(ctx, "x")
		if err != nil {
			t.Fatal(err)
		}
		if b.Addr != "b1" {
			t.Fatalf("run %d got broker %s, want the shared b1", i, b.Addr)
		}
		if err := l.age(fill); err != nil {
			t.Fatal(err)
		}
		if err := b.Stop(); err != nil { // a run's Stop leaves the shared broker running
			t.Fatal(err)
		}
	}
	if inner.started != 1 || inner.stopped != 0 || fills != 1 {
		t.Fatalf("started %d stopped %d filled %d, want 1, 0, 1", inner.started, inner.stopped, fills)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if inner.stopped != 1 {
		t.Fatalf("Release stopped %d brokers, want 1", inner.stopped)
	}
	// After Release the next run gets a new broker, aged again.
	b, _ := l.Broker(ctx, "x")
	l.age(fill)
	if b.Addr != "b2" || fills != 2 {
		t.Fatalf("after Release: broker %s, fills %d; want b2 aged again", b.Addr, fills)
	}
	l.Release()
	l.Release() // twice is harmless
	if inner.stopped != 2 {
		t.Fatalf("stopped %d, want 2", inner.stopped)
	}
}

func TestLongLivedPerRun(t *testing.T) {
	inner := &countingLauncher{}
	l := NewLongLived(inner, true)
	fills := 0
	for range 2 {
		b, _ := l.Broker(context.Background(), "x")
		l.age(func() error { fills++; return nil })
		b.Stop()
	}
	if inner.started != 2 || inner.stopped != 2 || fills != 2 {
		t.Fatalf("per run: started %d stopped %d filled %d, want 2 each", inner.started, inner.stopped, fills)
	}
}

func TestLongLivedFailedFillAgesAgain(t *testing.T) {
	l := NewLongLived(&countingLauncher{}, false)
	l.Broker(context.Background(), "x")
	if err := l.age(func() error { return fmt.Errorf("boom") }); err == nil {
		t.Fatal("want the fill's error")
	}
	ran := false
	l.age(func() error { ran = true; return nil })
	if !ran {
		t.Fatal("a failed fill left the broker counted as aged")
	}
}

func TestSweepRate(t *testing.T) {
	rates := func(c Config) string {
		var out []string
		for i := 0; i < 20; i++ {
			r, ok := c.SweepRate(i)
			if !ok {
				break
			}
			out = append(out, rateKey(r))
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{SweepRates: []float64{100e3, 200e3, 300e3, 400e3}, SweepOn: true, SweepMax: 700e3}, "100k,200k,300k,400k,500k,600k,700k"},
		{Config{SweepRates: []float64{100e3, 200e3, 300e3, 400e3}, SweepMax: 2e6}, "100k,200k,300k,400k"},
		{Config{SweepRates: []float64{100e3, 250e3}, SweepOn: true, SweepMax: 800e3}, "100k,250k,400k,550k,700k"},
		{Config{SweepRates: []float64{50e3}, SweepOn: true, SweepMax: 200e3}, "50k,100k,150k,200k"},
		{Config{SweepRates: []float64{100e3, 200e3, 300e3}, SweepMax: 250e3}, "100k,200k"},
		{Config{SweepRates: []float64{500, 1500}, SweepMax: 2000}, "500,1.5k"},
	} {
		if got := rates(c.cfg); got != c.want {
			t.Errorf("%+v: steps %s, want %s", c.cfg, got, c.want)
		}
	}
}

func TestPerSecond(t *testing.T) {
	hs := []*stats.Hist{stats.NewHist(), stats.NewHist(), stats.NewHist()}
	for i := 0; i < 100; i++ {
		hs[0].Record(time.Millisecond)
		hs[2].Record(time.Duration(i+1) * time.Millisecond)
	}
	s := perSecond(hs)
	if s.worstAt != 2 || s.worstP99 != s.p99[2] || s.p99[2] < 0.098 || !math.IsNaN(s.p99[1]) || math.Abs(s.max[2]-0.1) > 0.1e-3 {
		t.Fatalf("perSecond = %+v: want second 3 the worst (p99 ~99 ms, max 100 ms) and second 2 empty", s)
	}
	// Second 2 had no acknowledgement: over, as is second 3.
	if n := s.over(5 * time.Millisecond); n != 2 {
		t.Errorf("over 5 ms: %d seconds, want 2", n)
	}
	if e := perSecond(nil); e.worstAt != -1 || !math.IsNaN(e.worstP99) {
		t.Errorf("no seconds: %+v", e)
	}
}

func TestSteadyRate(t *testing.T) {
	cfg := Config{SweepRates: []float64{100e3, 200e3}, SweepMax: 1e6}
	for _, c := range []struct {
		env     Env
		want    float64
		notHalf bool
	}{
		{Env{Cfg: cfg, SweepRan: true, Sustainable: 300e3}, 150e3, false},
		{Env{Cfg: cfg, SweepRan: true}, 50e3, true},
		{Env{Cfg: Config{SweepRates: cfg.SweepRates, SweepMax: 1e6, Rate: 70e3}}, 70e3, true},
		{Env{Cfg: Config{SweepRates: cfg.SweepRates, SweepMax: 1e6, SteadyRate: 90e3, Rate: 70e3}, SweepRan: true, Sustainable: 300e3}, 90e3, true},
	} {
		got, why, err := steadyRate(&c.env)
		if err != nil || got != c.want || strings.Contains(why, report.SteadyNotHalf) != c.notHalf {
			t.Errorf("%+v: rate %v (%s, %v), want %v", c.env, got, why, err, c.want)
		}
	}
	if _, _, err := steadyRate(&Env{Cfg: cfg}); err == nil {
		t.Error("no sweep and no -rate: want an error")
	}
}

func TestCheckSpace(t *testing.T) {
	dir := t.TempDir()
	if err := checkSpace(dir, 1); err != nil {
		t.Skipf("less than %v bytes free here: %v", spareBytes, err)
	}
	if err := checkSpace(dir, 1e18); err == nil || !strings.Contains(err.Error(), "free") {
		t.Errorf("an exabyte step: err %v, want refused for space", err)
	}
}
