package netloop

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"sync/atomic"
	"unsafe"
)

// Releasing crypto/tls's record buffers on idle connections.
//
// A tls.Conn keeps rawInput (ciphertext being parsed) and hand (handshake
// messages) at the largest size they ever reached: about 3.5 KiB after a
// TLS 1.3 handshake with a post-quantum key share (2 KiB rawInput, 1.5 KiB
// hand), and a full record (about 17 KiB) in rawInput once one came in.
// That is most of what an idle TLS connection costs beyond its ciphers, and
// crypto/tls has no API to release it. So netloop reaches into the two
// unexported bytes.Buffer fields:
//   - After the handshake, both are dropped when empty.
//   - On the loop, rawInput is lent a pooled buffer for one tls.Conn.Read
//     and the buffer is taken back when Read has consumed every byte it
//     was given. tlsPipe hands crypto/tls at most one whole record per Read
//     on the loop (see readRecord), so that is the usual case and a busy
//     connection allocates nothing per record.
//
// This depends on crypto/tls's private layout, so the fields are checked
// once, by name and exact type, and if they differ the release is off
// (tlsBufsOK false; Server.Start logs it once) and connections simply keep
// their buffers as before. TestTLSBufLayout fails on a toolchain where the
// check fails, so an upgrade that changes the layout is noticed. What the
// check cannot see is a change of meaning (crypto/tls keeping a reference
// into rawInput after Read returns); the echo tests over many records,
// run with -race, are what would show that.
var tlsBufs = func() (l struct {
	ok               bool
	raw, hand, input uintptr // offsets in tls.Conn
}) {
	t := reflect.TypeFor[tls.Conn]()
	field := func(name string, want reflect.Type) (uintptr, bool) {
		f, ok := t.FieldByName(name)
		return f.Offset, ok && len(f.Index) == 1 && f.Type == want
	}
	var ok1, ok2, ok3 bool
	l.raw, ok1 = field("rawInput", reflect.TypeFor[bytes.Buffer]())
	l.hand, ok2 = field("hand", reflect.TypeFor[bytes.Buffer]())
	l.input, ok3 = field("input", reflect.TypeFor[bytes.Reader]())
	l.ok = ok1 && ok2 && ok3
	return l
}()

// tlsBufsWarned makes the log line for !tlsBufs.ok once per process.
var tlsBufsWarned atomic.Bool

// tlsLendBytes is the buffer rawInput is lent: a whole record of the
// largest size crypto/tls accepts (2^14 + 2048 + header) plus the 512
// bytes bytes.Buffer.ReadFrom wants free, so it never regrows it.
const tlsLendBytes = 32 << 10

// maxTLSRecordBytes is the largest record body crypto/tls accepts (TLS
// 1.2's 2^14 + 2048; 1.3's is smaller). tlsPipe waits for whole records up
// to this size on the loop; a longer one is refused by crypto/tls as soon
// as it sees the header.
const maxTLSRecordBytes = 16<<10 + 2048

// tlsConnBufs points at c's rawInput, hand and input. Only when tlsBufs.ok.
func tlsConnBufs(c *tls.Conn) (raw, hand *bytes.Buffer, input *bytes.Reader) {
	p := unsafe.Pointer(c)
	return (*bytes.Buffer)(unsafe.Add(p, tlsBufs.raw)),
		(*bytes.Buffer)(unsafe.Add(p, tlsBufs.hand)),
		(*bytes.Reader)(unsafe.Add(p, tlsBufs.input))
}

// lendRaw gives tc's rawInput a pooled buffer when it holds nothing, so
// the next Read parses into it; returnRaw takes it back. Loop only.
func (t *tlsState) lendRaw() {
	if !tlsBufs.ok || t.lent != nil {
		return
	}
	raw, _, _ := tlsConnBufs(t.tc)
	if raw.Len() != 0 {
		return // bytes from before (the handshake's tail): crypto/tls's own buffer
	}
	t.lent = getBuf(tlsLendBytes)
	*raw = *bytes.NewBuffer((*t.lent)[:0])
}

// returnRaw releases what tc's buffers hold once they are empty: the lent
// buffer back to the pool (unless crypto/tls swapped it for a bigger one),
// a buffer of crypto/tls's own to the collector. Bytes left over (only
// when the pipe handed more than a record: the handshake's tail) move to
// a buffer their size, so the lent one is never kept. After the handshake
// or a Read, on the goroutine running tc.
func (t *tlsState) returnRaw() {
	if !tlsBufs.ok {
		return
	}
	raw, hand, input := tlsConnBufs(t.tc)
	if hand.Len() == 0 {
		*hand = bytes.Buffer{}
	}
	if input.Len() != 0 {
		return // plaintext not yet read lives in rawInput's buffer
	}
	input.Reset(nil) // it still points into rawInput's buffer
	var rest []byte
	if raw.Len() != 0 {
		if t.lent == nil {
			return
		}
		rest = bytes.Clone(raw.Bytes())
	}
	raw.Reset()
	free := raw.AvailableBuffer()
	*raw = bytes.Buffer{}
	if rest != nil {
		*raw = *bytes.NewBuffer(rest)
	}
	if t.lent != nil {
		if cap(free) == cap(*t.lent) && unsafe.SliceData(free[:1]) == unsafe.SliceData((*t.lent)[:1]) {
			putBuf(t.lent) // else crypto/tls regrew it: left to the collector
		}
		t.lent = nil
	}
}
