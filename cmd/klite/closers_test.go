package main

import (
	"bytes"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
)

// TestClosersReverseOrder: close runs the stops newest first, runs them
// all when some fail, joins their errors and leaves the stack empty.
func TestClosersReverseOrder(t *testing.T) {
	var c closers
	var ran []int
	errA, errB := errors.New("a"), errors.New("b")
	for i, err := range []error{nil, errA, nil, errB} {
		c.push(func() error { ran = append(ran, i); return err })
	}
	err := c.close()
	if !slices.Equal(ran, []int{3, 2, 1, 0}) {
		t.Fatalf("ran %v, want 3 2 1 0", ran)
	}
	if !errors.Is(err, errA) || !errors.Is(err, errB) {
		t.Fatalf("close: %v, want both errors", err)
	}
	if err := c.close(); err != nil || len(ran) != 4 {
		t.Fatalf("second close: %v, ran %v: want nothing run again", err, ran)
	}
}

// TestFailedStartClosesStore: a start that fails after storage and the
// group coordinator are open (the listen address is taken) closes them on
// the way out, as a graceful stop would, and exits 1.
func TestFailedStartClosesStore(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var out bytes.Buffer
	code := run([]string{"-wal", t.TempDir(), "-listen", taken.Addr().String(), "-log-format", "json"},
		func(string) string { return "" }, &out)
	if code != 1 {
		t.Fatalf("exit code %d, want 1\n%s", code, out.String())
	}
	log := out.String()
	open, closed := strings.Index(log, `"storage open"`), strings.Index(log, `"storage closed"`)
	if open < 0 || closed < open || !strings.Contains(log, "listen on") {
		t.Fatalf("want storage opened, the listen error, and storage closed:\n%s", log)
	}
}
