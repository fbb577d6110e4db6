package netloop

import (
	"encoding/binary"
	"errors"
)

// sizePrefixBytes is the frame size prefix: a big-endian int32 (Kafka's wire format).
const sizePrefixBytes = 4

// errFrameSize is returned by the parser for a negative size or one above the limit.
var errFrameSize = errors.New("netloop: frame size out of range")

// source is where the parser pulls bytes from: gnet's inbound buffer on the
// event loop, a slice in tests. Read returns 0 when nothing is buffered; it
// never blocks.
type source interface {
	Read(p []byte) (int, error)
}

// parser splits a byte stream into frames. It is resumable: when the source
// runs dry it keeps its place (inside the size prefix or the body) and carries
// on at the next call. Bytes are copied once, from the source straight into a
// pooled buffer of the frame's size.
//
// Between reading a size prefix and taking a buffer for the body it asks
// admit whether the frame may start; a refused frame stays pending (size known,
// no memory taken) and admit is asked again on the next call. That is where
// backpressure holds frames back.
type parser struct {
	maxFrameBytes int32

	hdr   [sizePrefixBytes]byte
	hdrN  int     // prefix bytes read
	size  int     // frame size, valid when hdrN == sizePrefixBytes
	buf   *[]byte // pooled body buffer; nil until the frame is admitted (and for size 0)
	body  []byte  // the frame being filled; non-nil once admitted
	bodyN int     // body bytes read
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
		n, _ := src.Read(p.hdr[p.hdrN:])
		p.hdrN += n
		consumed += n
		if p.hdrN < sizePrefixBytes {
			return frame{}, false, consumed, nil
		}
		size := int32(binary.BigEndian.Uint32(p.hdr[:]))
		if size < 0 || size > p.maxFrameBytes {
			return frame{}, false, consumed, errFrameSize
		}
		p.size = int(size)
	}
	if p.body == nil {
		if !admit(p.size) {
			return frame{}, false, consumed, nil
		}
		if p.size == 0 {
			p.body = []byte{}
		} else {
			p.buf = getBuf(p.size)
			p.body = *p.buf
		}
	}
	if p.bodyN < p.size {
		n, _ := src.Read(p.body[p.bodyN:])
		p.bodyN += n
		consumed += n
		if p.bodyN < p.size {
			return frame{}, false, consumed, nil
		}
	}
	f = frame{b: p.body, buf: p.buf}
	p.reset()
	return f, true, consumed, nil
}

// pending reports whether a size prefix has been read for a frame that admit
// has not yet let start.
func (p *parser) pending() bool { return p.hdrN == sizePrefixBytes && p.body == nil }

// admitted reports whether a partly read frame holds an admitted buffer, and its size.
func (p *parser) admitted() (size int, ok bool) { return p.size, p.body != nil }

// release drops a partly read frame and returns its buffer to the pool.
func (p *parser) release() {
	putBuf(p.buf)
	p.reset()
}

func (p *parser) reset() {
	p.hdrN, p.size, p.buf, p.body, p.bodyN = 0, 0, nil, nil, 0
}
