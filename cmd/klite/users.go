package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/klite/klite/kafka"
	"github.com/klite/klite/vfs"
)

// loadUsersFile reads -sasl-users-file: one "user:password" a line (the
// password is everything after the first colon), blank lines and lines
// starting with # skipped. Each user gets SCRAM credentials for both
// mechanisms, in users and durably in st, unless st already has ones that
// match the password. Only salted credentials are kept; the file's bytes
// are dropped once read.
func loadUsersFile(path string, users *kafka.Users, st kafka.UserStore) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	defer clear(b)
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		l := bytes.TrimRight(sc.Bytes(), "\r")
		if len(bytes.TrimSpace(l)) == 0 || l[0] == '#' {
			continue
		}
		name, pass, ok := bytes.Cut(l, []byte(":"))
		if !ok || len(name) == 0 {
			return 0, fmt.Errorf("%s:%d: %w", path, line, kafka.ErrBadUsersFile)
		}
		if err := users.Seed(st, string(name), string(pass), kafka.DefaultScramIterations); err != nil {
			return 0, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		n++
	}
	return n, sc.Err()
}

// saslSecretFile keeps the secret unknown SASL users' made-up SCRAM
// credentials are derived from, so they survive a restart like real
// users' (kafka.Users.SetFakeSecret). It lives in -wal only, never in the
// bucket's metadata snapshot: a broker recovered from the bucket makes a
// new one.
const saslSecretFile = "sasl.secret"

// loadSASLSecret reads the secret kept in dir, or makes one and keeps it
// durably, readable by the broker's user only.
func loadSASLSecret(fsys vfs.FS, dir string) ([kafka.FakeSecretBytes]byte, error) {
	var secret [kafka.FakeSecretBytes]byte
	path := filepath.Join(dir, saslSecretFile)
	b, err := vfs.ReadFile(fsys, path)
	if err == nil && len(b) == len(secret) {
		copy(secret[:], b)
		clear(b)
		return secret, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return secret, fmt.Errorf("read %s: %w", path, err)
	}
	// Missing, or not a secret of ours (a torn write cannot leave one:
	// vfs writes it whole or not at all): make a new one.
	if _, err := rand.Read(secret[:]); err != nil {
		return secret, err
	}
	if err := vfs.WritePrivateFile(fsys, path, secret[:]); err != nil {
		return secret, fmt.Errorf("write %s: %w", path, err)
	}
	return secret, nil
}
