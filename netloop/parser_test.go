package netloop

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// sliceSource is a source over a byte slice that records what was taken.
type sliceSource struct {
	b   []byte
	off int
}

func (s *sliceSource) Read(p []byte) (int, error) {
	n := copy(p, s.b[s.off:])
	s.off += n
	return n, nil
}

func (s *sliceSource) InboundBuffered() int { return len(s.b) - s.off }

func admitAll(int) bool { return true }

// refSplit is the reference splitter: whole input at once, obvious code.
// It returns the frames, the bytes a streaming parser must have consumed
// (everything, or up to the end of a bad size prefix) and whether one was bad.
func refSplit(in []byte, maxFrame int32) (frames [][]byte, consumed int, bad bool) {
	for len(in)-consumed >= 4 {
		size := int32(binary.BigEndian.Uint32(in[consumed:]))
		if size < 0 || size > maxFrame {
			return frames, consumed + 4, true
		}
		if len(in)-consumed-4 < int(size) {
			break
		}
		frames = append(frames, in[consumed+4:consumed+4+int(size)])
		consumed += 4 + int(size)
	}
	return frames, len(in), false
}

// feed runs p over chunks, each as one read's worth of input, and returns the
// frames, total consumed and whether the parser failed.
func feed(t testing.TB, p *parser, chunks [][]byte, admit func(int) bool) (frames [][]byte, consumed int, bad bool) {
	for _, ch := range chunks {
		src := &sliceSource{b: ch}
		for {
			f, ok, n, err := p.next(src, admit)
			consumed += n
			if src.off > len(ch) || n < 0 {
				t.Fatalf("parser consumed past its input: off %d len %d", src.off, len(ch))
			}
			if err != nil {
				if !errors.Is(err, errFrameSize) {
					t.Fatalf("unexpected error %v", err)
				}
				return frames, consumed, true
			}
			if !ok {
				if p.pending() {
					continue // held by admit: ask again, as the server does when caps free
				}
				if src.off != len(ch) {
					t.Fatalf("parser stopped with %d bytes unread and no frame held", len(ch)-src.off)
				}
				break
			}
			frames = append(frames, bytes.Clone(f.b))
			putBuf(f.buf)
		}
	}
	return frames, consumed, false
}

func frameBytes(payloads ...[]byte) []byte {
	var b []byte
	for _, p := range payloads {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

func splitInputs() map[string][]byte {
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	return map[string][]byte{
		"one":        frameBytes([]byte("hello")),
		"empty":      frameBytes([]byte{}),
		"several":    frameBytes([]byte("a"), []byte{}, []byte("bcdef"), bytes.Repeat([]byte{0xff}, 300)),
		"large":      frameBytes(big, []byte("tail")),
		"partial":    append(frameBytes([]byte("whole")), 0, 0, 0, 9, 'x'),
		"bad-after":  append(frameBytes([]byte("ok")), 0xff, 0xff, 0xff, 0xff, 1, 2),
		"huge-after": append(frameBytes([]byte("ok")), 0x7f, 0xff, 0xff, 0xff),
	}
}

const testMaxFrame = 1 << 20

// TestParserSplit cuts every input at every point, and byte by byte; each
// way must give the frames one read gives.
func TestParserSplit(t *testing.T) {
	for name, in := range splitInputs() {
		t.Run(name, func(t *testing.T) {
			want, wantN, wantBad := refSplit(in, testMaxFrame)
			check := func(how string, chunks [][]byte, admit func(int) bool) {
				t.Helper()
				var charged int64
				p := &parser{maxFrameBytes: testMaxFrame, charge: func(d int64) { charged += d }}
				got, n, bad := feed(t, p, chunks, admit)
				if bad != wantBad || n != wantN || len(got) != len(want) {
					t.Fatalf("%s: got %d frames, consumed %d, bad %v; want %d, %d, %v",
						how, len(got), n, bad, len(want), wantN, wantBad)
				}
				// The budget is charged exactly the whole frames' sizes plus
				// the buffer of the one being read.
				wantCharged := int64(p.held())
				for _, f := range got {
					wantCharged += int64(len(f))
				}
				if charged != wantCharged {
					t.Fatalf("%s: charged %d, want %d", how, charged, wantCharged)
				}
				for i := range want {
					if !bytes.Equal(got[i], want[i]) {
						t.Fatalf("%s: frame %d differs", how, i)
					}
				}
				p.release()
			}
			check("whole", [][]byte{in}, admitAll)
			step := 1
			if len(in) > 4096 {
				step = 97 // keep the large input fast; still cuts inside prefixes and bodies
			}
			for i := 0; i <= len(in); i += step {
				check(fmt.Sprintf("cut at %d", i), [][]byte{in[:i], in[i:]}, admitAll)
			}
			var bytewise [][]byte
			for i := range in {
				bytewise = append(bytewise, in[i:i+1])
			}
			check("byte by byte", bytewise, admitAll)
			// Refusing every other admit only delays frames; it changes nothing.
			var calls int
			check("held", bytewise, func(int) bool { calls++; return calls%2 == 0 })
		})
	}
}

func TestParserBadSizes(t *testing.T) {
	for _, size := range []int32{-1, -1 << 31, testMaxFrame + 1, 1<<31 - 1} {
		p := &parser{maxFrameBytes: testMaxFrame}
		in := binary.BigEndian.AppendUint32(nil, uint32(size))
		_, ok, n, err := p.next(&sliceSource{b: in}, admitAll)
		if ok || n != 4 || !errors.Is(err, errFrameSize) {
			t.Fatalf("size %d: ok %v consumed %d err %v", size, ok, n, err)
		}
	}
	// The limit itself is allowed.
	p := &parser{maxFrameBytes: 8}
	in := frameBytes(make([]byte, 8))
	if _, ok, _, err := p.next(&sliceSource{b: in}, admitAll); !ok || err != nil {
		t.Fatalf("frame of exactly the limit: ok %v err %v", ok, err)
	}
}

// FuzzParser: whatever the bytes and however they are cut, the parser never
// panics, never consumes past its input, and finds exactly the frames (and
// the bad size prefix) the reference splitter finds.
func FuzzParser(f *testing.F) {
	for _, in := range splitInputs() {
		if len(in) < 1024 {
			f.Add(in, uint8(3), uint8(0))
		}
	}
	f.Add([]byte{}, uint8(1), uint8(0))
	f.Add([]byte{0, 0, 0}, uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, cut uint8, holdEvery uint8) {
		const maxFrame = 1 << 12
		want, wantN, wantBad := refSplit(in, maxFrame)
		var chunks [][]byte
		step := int(cut%32) + 1
		for i := 0; i < len(in); i += step {
			chunks = append(chunks, in[i:min(i+step, len(in))])
		}
		var calls int
		admit := func(int) bool {
			calls++
			return holdEvery == 0 || calls%int(holdEvery%4+2) != 0
		}
		p := &parser{maxFrameBytes: maxFrame}
		got, n, bad := feed(t, p, chunks, admit)
		if bad != wantBad || n != wantN || len(got) != len(want) {
			t.Fatalf("got %d frames, consumed %d, bad %v; want %d, %d, %v", len(got), n, bad, len(want), wantN, wantBad)
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("frame %d differs", i)
			}
		}
		p.release()
	})
}

// manySource hands out the same input again for benchmarks.
func BenchmarkParser(b *testing.B) {
	for _, size := range []int{0, 100, 4 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("frame=%d", size), func(b *testing.B) {
			payload := bytes.Repeat([]byte{7}, size)
			n := max(1, (64<<10)/(size+4)) // about one 64 KiB read's worth
			var in []byte
			for range n {
				in = append(in, frameBytes(payload)...)
			}
			p := &parser{maxFrameBytes: 1 << 30}
			src := &sliceSource{}
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				src.b, src.off = in, 0
				for {
					f, ok, _, err := p.next(src, admitAll)
					if err != nil {
						b.Fatal(err)
					}
					if !ok {
						break
					}
					putBuf(f.buf)
				}
			}
		})
	}
}

// BenchmarkParserChunked feeds one large frame in 64 KiB reads, as gnet
// delivers it, so the buffer grows as the bytes arrive (at most one extra
// copy of the frame, against BenchmarkParser's single read).
func BenchmarkParserChunked(b *testing.B) {
	for _, size := range []int{256 << 10, 1 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("frame=%d", size), func(b *testing.B) {
			in := frameBytes(bytes.Repeat([]byte{7}, size))
			p := &parser{maxFrameBytes: 1 << 30}
			src := &sliceSource{}
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				for off := 0; off < len(in); off += 64 << 10 {
					src.b, src.off = in[off:min(off+64<<10, len(in))], 0
					f, ok, _, err := p.next(src, admitAll)
					if err != nil {
						b.Fatal(err)
					}
					if ok {
						putBuf(f.buf)
					}
				}
			}
		})
	}
}
