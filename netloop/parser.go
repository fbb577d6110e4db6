package netloop

import (
	"encoding/binary"
	"errors"
)

// sizePrefixBytes is the frame size prefix: a big-endian int32 (Kafka's wire format).
const sizePrefixBytes = 4

// minBodyBytes is the smallest buffer the parser takes for a frame whose
// bytes have not all arrived: small enough that a size prefix followed by
// little costs little, large enough that a frame arriving in pieces does
// not start with many small copies.
const minBodyBytes = 4 << 10

// errFrameSize is returned by the parser for a negative size or one above the limit.
var errFrameSize = errors.New("netloop: frame size out of range")

// source is where the parser pulls bytes from: gnet's inbound buffer on the
// event loop, a slice in tests. Read returns 0 when nothing is buffered; it
// never blocks. InboundBuffered is how many bytes Read can return now.
type source interface {
	Read(p []byte) (int, error)
	InboundBuffered() int
}

// parser splits a byte stream into frames. It is resumable: when the source
// runs dry it keeps its place (inside the size prefix or the body) and carries
// on at the next call.
//
// Between reading a size prefix and reading the body it asks admit whether
// the frame may start; a refused frame stays pending (size known, no memory
// taken) and admit is asked again on the next call. That is where
// backpressure holds frames back.
//
// The body buffer grows with the bytes that have arrived, never ahead of
// them (and charge is told of each step, so a completed frame has charged
// exactly its size): a frame whose bytes are all buffered gets one pooled buffer of its
// size and one copy; a frame arriving in pieces starts at minBodyBytes (or
// what is there) and at least doubles each time it fills, so a large frame
// costs at most one extra copy of itself and a size prefix followed by
// nothing costs no buffer at all.
type parser struct {
	maxFrameBytes int32
	// charge, when set, is told of every change in the body buffer's size:
	// the server counts frame bytes held against its budget.
	charge func(delta int64)

	hdr      [sizePrefixBytes]byte
	hdrN     int     // prefix bytes read
	size     int     // frame size, valid when hdrN == sizePrefixBytes
	admitted bool    // admit let this frame start
	buf      *[]byte // pooled buffer behind body; nil while body is empty
	body     []byte  // the buffer being filled: len is what it can hold (<= size)
	bodyN    int     // body bytes read
}

// frame is a whole frame and the pooled buffer behind it (nil for size 0).
type frame struct {
	b   []byte
	buf *[]byte
}

// next reads from src until one frame is whole, src runs dry, or admit refuses
// the next frame. It returns the frame and ok=true when one is whole, and the
// number of bytes it consumed from src. err is errFrameSize for an invalid size
// prefix; the parser must not be used after an error.
func (p *parser) next(src source, admit func(size int) bool) (f frame, ok bool, consumed int, err error) {
	if p.hdrN < sizePrefixBytes {
		// A TLS source serves one record's plaintext per Read, and a
		// peer may cut the size prefix across records.
		for p.hdrN < sizePrefixBytes {
			n, _ := src.Read(p.hdr[p.hdrN:])
			if n == 0 {
				return frame{}, false, consumed, nil
			}
			p.hdrN += n
			consumed += n
		}
		size := int32(binary.BigEndian.Uint32(p.hdr[:]))
		if size < 0 || size > p.maxFrameBytes {
			return frame{}, false, consumed, errFrameSize
		}
		p.size = int(size)
	}
	if !p.admitted {
		if !admit(p.size) {
			return frame{}, false, consumed, nil
		}
		p.admitted = true
	}
	for p.bodyN < p.size {
		if p.bodyN == len(p.body) && !p.grow(src.InboundBuffered()) {
			return frame{}, false, consumed, nil
		}
		n, _ := src.Read(p.body[p.bodyN:])
		if n == 0 {
			return frame{}, false, consumed, nil
		}
		p.bodyN += n
		consumed += n
	}
	f = frame{b: p.body[:p.size], buf: p.buf}
	if p.size == 0 {
		f.b = []byte{}
	}
	p.reset()
	return f, true, consumed, nil
}

// grow makes room for more body bytes when avail of them have arrived, and
// reports whether there is room. Body bytes read so far are copied over.
func (p *parser) grow(avail int) bool {
	if avail <= 0 {
		return false
	}
	want := min(p.size, max(p.bodyN+avail, 2*len(p.body), minBodyBytes))
	nb := getBuf(want)
	body := (*nb)[:min(cap(*nb), p.size)]
	copy(body, p.body[:p.bodyN])
	putBuf(p.buf)
	if p.charge != nil {
		p.charge(int64(len(body) - len(p.body)))
	}
	p.buf, p.body = nb, body
	return true
}

// pending reports whether a size prefix has been read for a frame that admit
// has not yet let start.
func (p *parser) pending() bool { return p.hdrN == sizePrefixBytes && !p.admitted }

// admittedSize reports whether a partly read frame was admitted, and its size.
func (p *parser) admittedSize() (size int, ok bool) { return p.size, p.admitted }

// held returns the body bytes a partly read frame holds (and has charged).
func (p *parser) held() int { return len(p.body) }

// release drops a partly read frame and returns its buffer to the pool.
func (p *parser) release() {
	putBuf(p.buf)
	p.reset()
}

func (p *parser) reset() {
	p.hdrN, p.size, p.admitted, p.buf, p.body, p.bodyN = 0, 0, false, nil, nil, 0
}
