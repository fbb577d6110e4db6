package kafka

import (
	"testing"

	"github.com/xdg-go/scram"
)

// BenchmarkScramServerExchange is the broker's side of one SCRAM-SHA-256
// and one SCRAM-SHA-512 authentication (both messages); the client's
// keys are derived once (xdg-go caches them per salt), as a client that
// reconnects does.
func BenchmarkScramServerExchange(b *testing.B) {
	users := NewUsers()
	if err := users.AddPassword("alice", "alice-secret", DefaultScramIterations); err != nil {
		b.Fatal(err)
	}
	for _, m := range scramMechanisms {
		b.Run(m.Name(), func(b *testing.B) {
			h := scram.SHA256
			if m == ScramSHA512 {
				h = scram.SHA512
			}
			cl, _ := h.NewClientUnprepped("alice", "alice-secret", "")
			b.ReportAllocs()
			for b.Loop() {
				conv := cl.NewConversation()
				first, _ := conv.Step("")
				srv := newScramConv(m, users)
				s1, _, err := srv.step(first)
				if err != nil {
					b.Fatal(err)
				}
				final, _ := conv.Step(s1)
				if _, done, err := srv.step(final); err != nil || !done {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPlainVerify is one PLAIN check: a PBKDF2 of the stored
// credential's iterations (SCRAM-SHA-512, 4096), off the event loop.
func BenchmarkPlainVerify(b *testing.B) {
	users := NewUsers()
	if err := users.AddPassword("alice", "alice-secret", DefaultScramIterations); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !users.verifyPlain("alice", "alice-secret") {
			b.Fatal("refused")
		}
	}
}
