package kafka

import (
	"strconv"
	"testing"
)

// TestFakeCredentialShapes: unknown users' made-up credentials take the
// real users' iteration counts and salt lengths, in about the real
// users' proportions, and are stable per name and secret.
func TestFakeCredentialShapes(t *testing.T) {
	u := NewUsers()
	if err := u.AddPassword("a", "pw", 4096); err != nil {
		t.Fatal(err)
	}
	salted := make([]byte, 32)
	u.Set("b", ScramCredentialFromSalted(ScramSHA256, make([]byte, 16), salted, 8192))
	const n = 3000
	counts := map[credShape]int{}
	for i := range n {
		c := u.fake("x"+strconv.Itoa(i), ScramSHA256)
		counts[credShape{c.Iterations, len(c.Salt)}]++
	}
	if len(counts) != 2 || counts[credShape{4096, 32}] < n/3 || counts[credShape{8192, 16}] < n/3 {
		t.Fatalf("shapes %v over %d names, want about half each of {4096 32} and {8192 16}", counts, n)
	}
	// SHA-512 has only a's credential.
	if c := u.fake("x", ScramSHA512); c.Iterations != 4096 || len(c.Salt) != 32 {
		t.Fatalf("SHA-512 fake: %d iterations, %d-byte salt", c.Iterations, len(c.Salt))
	}
	var secret [FakeSecretBytes]byte
	secret[0] = 1
	u.SetFakeSecret(secret)
	c1 := u.fake("x", ScramSHA256)
	u2 := NewUsers()
	u2.Set("b", ScramCredentialFromSalted(ScramSHA256, make([]byte, 16), salted, 8192))
	u2.SetFakeSecret(secret)
	if c2 := u2.fake("x", ScramSHA256); string(c2.Salt) != string(c1.Salt) {
		t.Fatal("same secret, same name, another salt")
	}
	// A salt longer than one digest.
	u2.Set("b", ScramCredentialFromSalted(ScramSHA256, make([]byte, 100), salted, 8192))
	if c := u2.fake("x", ScramSHA256); len(c.Salt) != 100 {
		t.Fatalf("salt of %d bytes, want 100", len(c.Salt))
	}
}

// TestFakePlainFollowsUsers: a PLAIN check of an unknown name derives its
// key as a known user's check does (that user's strongest credential), so
// it costs the same: with SHA-256 users only, not SHA-512 at 4096.
func TestFakePlainFollowsUsers(t *testing.T) {
	u := NewUsers()
	u.Set("b", ScramCredentialFromSalted(ScramSHA256, make([]byte, 16), make([]byte, 32), 8192))
	if c := u.preparePlain("nobody", []byte("pw")); c.found || c.cred.Mechanism != ScramSHA256 || c.cred.Iterations != 8192 {
		t.Fatalf("unknown name checked with %v at %d iterations, want SHA-256 at 8192 as b's", c.cred.Mechanism, c.cred.Iterations)
	}
	if err := u.AddPassword("a", "pw", 4096); err != nil { // both mechanisms: SHA-512 is a's strongest
		t.Fatal(err)
	}
	seen := map[plainShape]bool{}
	for i := range 200 {
		c := u.preparePlain("x"+strconv.Itoa(i), []byte("pw")).cred
		seen[plainShape{c.Mechanism, credShape{c.Iterations, len(c.Salt)}}] = true
	}
	want := map[plainShape]bool{{ScramSHA256, credShape{8192, 16}}: true, {ScramSHA512, credShape{4096, scramSaltBytes}}: true}
	if len(seen) != len(want) || !seen[plainShape{ScramSHA256, credShape{8192, 16}}] || !seen[plainShape{ScramSHA512, credShape{4096, scramSaltBytes}}] {
		t.Fatalf("unknown names checked with %v, want each of %v", seen, want)
	}
}
