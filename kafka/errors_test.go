package kafka

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestUnknownErrorLoggedOnce: an unmapped storage error is logged the first
// time only, also after more distinct errors than the log-once memory holds
// have come by (it once stopped remembering at 256 and then logged every
// occurrence of every newer error); the memory stays bounded, forgetting
// the least recently seen.
func TestUnknownErrorLoggedOnce(t *testing.T) {
	var buf bytes.Buffer
	h := New(Config{Logger: zerolog.New(&buf)}, newFakeStore())
	logged := func() int { return strings.Count(buf.String(), "UNKNOWN_SERVER_ERROR") }
	unknown := func(i int) error { return fmt.Errorf("disk %d on fire", i) }

	n := maxUnknownLogged + 100
	for round := range 3 {
		for i := range n {
			// The newest maxUnknownLogged keep recurring; each is logged
			// once over all rounds.
			if round > 0 && i < n-maxUnknownLogged {
				continue
			}
			h.errCode(unknown(i))
			h.errCode(unknown(i))
		}
	}
	if got := logged(); got != n {
		t.Fatalf("%d distinct errors, each repeated: %d log lines, want %d", n, got, n)
	}
	if got := len(h.unknownLogged.seen); got != maxUnknownLogged {
		t.Fatalf("log-once remembers %d errors, want the bound %d", got, maxUnknownLogged)
	}
	// The least recently seen were forgotten: error 0 is logged again, once.
	h.errCode(unknown(0))
	h.errCode(unknown(0))
	if got := logged(); got != n+1 {
		t.Fatalf("a forgotten error recurring: %d log lines, want %d", got, n+1)
	}
}
