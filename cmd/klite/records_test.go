package main

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"testing"
)

// The big client tests write record i of a run to partition i%parts with
// per-partition sequence i/parts, and a value that encodes both, so a
// consumer can check content, order and offsets without remembering
// anything: the record at offset o of partition p must be value(p, o).

const (
	bigParts  = 8
	valueSize = 100
)

// value returns the 100-byte value of sequence seq in partition p.
func value(p int32, seq int64) []byte {
	b := make([]byte, 0, valueSize)
	b = append(b, "klite p="...)
	b = strconv.AppendInt(b, int64(p), 10)
	b = append(b, " s="...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, ' ')
	// Pseudo-random filler (splitmix64 of partition and sequence), so
	// compressing clients still move about 100 bytes per record.
	x := uint64(p)<<48 ^ uint64(seq)
	for len(b) < valueSize {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		for i := 0; i < 8 && len(b) < valueSize; i++ {
			b = append(b, fillerChars[z%uint64(len(fillerChars))])
			z /= uint64(len(fillerChars))
		}
	}
	return b
}

const fillerChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// key is the record key: the partition, so key-hashing clients are not needed.
func key(p int32) []byte { return []byte{'k', byte('0' + p)} }

// partitionOf inverts key.
func partitionOf(k []byte) int32 { return int32(k[1] - '0') }

// seqCount is how many records partition p gets out of n.
func seqCount(n int, p int32) int64 {
	c := int64(n / bigParts)
	if int64(n%bigParts) > int64(p) {
		c++
	}
	return c
}

// verifier checks consumed records of the big run: per partition, offsets
// contiguous from 0 and each value the one produced at that position.
type verifier struct {
	t      testing.TB
	n      int
	mu     sync.Mutex
	next   [bigParts]int64
	errs   int
	client string
}

func newVerifier(t testing.TB, client string, n int) *verifier {
	return &verifier{t: t, n: n, client: client}
}

// add checks one record and reports whether the run is complete.
func (v *verifier) add(p int32, offset int64, val []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if p < 0 || p >= bigParts {
		v.fail("record from partition %d", p)
		return
	}
	want := v.next[p]
	if offset != want {
		v.fail("partition %d: got offset %d, want %d", p, offset, want)
	}
	if exp := value(p, offset); !bytes.Equal(val, exp) {
		v.fail("partition %d offset %d: value %q, want %q", p, offset, val, exp)
	}
	v.next[p] = offset + 1
}

func (v *verifier) fail(format string, args ...any) {
	v.errs++
	if v.errs <= 20 {
		v.t.Errorf("%s: "+format, append([]any{v.client}, args...)...)
	}
}

// done reports whether every partition has all its records.
func (v *verifier) done() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for p := int32(0); p < bigParts; p++ {
		if v.next[p] < seqCount(v.n, p) {
			return false
		}
	}
	return true
}

func (v *verifier) partDone(p int32) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.next[p] >= seqCount(v.n, p)
}

func (v *verifier) progress() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return fmt.Sprint(v.next)
}

func TestValueRoundTrip(t *testing.T) {
	for _, c := range []struct {
		p   int32
		seq int64
	}{{0, 0}, {7, 124999}, {3, 1 << 40}} {
		v := value(c.p, c.seq)
		if len(v) != valueSize {
			t.Fatalf("value(%d, %d) has %d bytes", c.p, c.seq, len(v))
		}
		if bytes.Equal(v, value(c.p, c.seq+1)) {
			t.Fatalf("values of consecutive sequences are equal")
		}
	}
	if partitionOf(key(5)) != 5 {
		t.Fatal("partitionOf(key(5)) != 5")
	}
	if got := seqCount(10, 1) + seqCount(10, 2) + seqCount(10, 7); got != 2+1+1 {
		t.Fatalf("seqCount sums %d", got)
	}
}
