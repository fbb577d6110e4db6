package scenario

import (
	"testing"
	"time"
)

func TestActiveSpan(t *testing.T) {
	t0 := time.Unix(0, 0)
	at := func(s float64, read float64) compSample {
		return compSample{t: t0.Add(time.Duration(s * float64(time.Second))), read: read}
	}
	for _, tc := range []struct {
		ss         []compSample
		read, secs float64
	}{
		{[]compSample{at(0, 5)}, 0, 0},
		{[]compSample{at(0, 5), at(1, 5), at(2, 5)}, 0, 0},
		// Idle, reading from 1 s to 3 s, idle again: 30 bytes over 2 s.
		{[]compSample{at(0, 0), at(1, 0), at(2, 10), at(3, 30), at(4, 30)}, 30, 2},
		// Two bursts: the span covers both, the pause between included.
		{[]compSample{at(0, 0), at(1, 10), at(2, 10), at(3, 20)}, 20, 3},
	} {
		read, secs := activeSpan(tc.ss)
		if read != tc.read || secs != tc.secs {
			t.Errorf("activeSpan(%v) = %v, %v; want %v, %v", tc.ss, read, secs, tc.read, tc.secs)
		}
	}
}
