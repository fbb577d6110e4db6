package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"

	"github.com/klite/klite/kafka"
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
