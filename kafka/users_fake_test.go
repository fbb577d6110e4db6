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
