package kafka

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// panicWatch is a log sink that remembers whether the handler recovered a panic.
type panicWatch struct {
	mu  sync.Mutex
	hit string
}

func (p *panicWatch) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte("handler panic")) {
		p.mu.Lock()
		p.hit = string(b)
		p.mu.Unlock()
	}
	return len(b), nil
}

// seedFrames are valid requests for every advertised API at its min, first
// flexible, and max versions.
func seedFrames() [][]byte {
	var out [][]byte
	keys := make([]int, 0, len(wantVersions))
	for k := range wantVersions {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	for _, k := range keys {
		a := apis[k]
		for _, v := range []int16{a.min, a.flexibleFrom, a.max} {
			if v > a.max {
				continue
			}
			out = append(out, encodeRequest(sampleRequest(int16(k), v), testCorr))
		}
	}
	return out
}

// FuzzServe: any frame is answered exactly once (a response, an empty
// acks=0 response, or a close), never by a panic (the handler's recover
// would log it) and never by a hang (pending.wait bounds it).
func FuzzServe(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		hs := newHarness(t) // fails on a recovered panic
		hs.createTopic("t", 2, nil)
		hs.st.appendSync = true
		hs.produceTo("t", 0, makeBatch(batchOpts{records: 2, payload: 10}))
		p := hs.serveFrame(frame)
		hs.h.Close() // answers long polls the input may have started
		resp := p.wait(t)
		if resp.Release != nil {
			resp.Release()
		}
	})
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzServe from seedFrames
// when KLITE_WRITE_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("KLITE_WRITE_CORPUS") != "1" {
		t.Skip("set KLITE_WRITE_CORPUS=1 to regenerate the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzServe")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seedFrames() {
		var b strings.Builder
		b.WriteString("go test fuzz v1\n[]byte(")
		b.WriteString(fmt.Sprintf("%q", s))
		b.WriteString(")\n")
		name := filepath.Join(dir, fmt.Sprintf("seed-key%d-v%d-%02d", int16(s[0])<<8|int16(s[1]), int16(s[2])<<8|int16(s[3]), i))
		if err := os.WriteFile(name, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
