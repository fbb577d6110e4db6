package netloop

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// maxIovecs is IOV_MAX on Linux: writev fails with EINVAL past it.
	maxIovecs = 1024
	// maxSendfileBytes bounds one sendfile call, so the write budget is
	// checked between calls.
	maxSendfileBytes = 4 << 20
	// copyChunkBytes is the buffer for file parts sent by ReadAt + write.
	copyChunkBytes = 256 << 10
	// writeBudgetBytes is what one connection may write per turn on its loop
	// before it yields to the loop's other connections.
	writeBudgetBytes = 8 << 20
)

var errShortFile = errors.New("netloop: file ends before the part does")

// writeState is the progress through the response at the head of the queue.
// Loop only.
type writeState struct {
	hdrOff   int   // size-prefix bytes written
	part     int   // index of the part being written
	off      int64 // bytes of that part written
	copyMode bool  // that file part goes by ReadAt + write
	chunk    *[]byte
	chunkOff int // chunk[chunkOff:chunkN] is read from the file, not yet written
	chunkN   int
}

func (w *writeState) reset() {
	putBuf(w.chunk)
	*w = writeState{}
}

type writeStatus int

const (
	wrote   writeStatus = iota // progress made; go on
	blocked                    // the socket is full: park
)

var iovPool = sync.Pool{New: func() any { s := make([][]byte, 0, 16); return &s }}

// flush writes completed responses in request order. It stops at the first
// response not yet answered, at a full socket (parking the connection), or
// when the write budget is spent. Consecutive completed byte responses go out
// in one writev. Loop only.
func (c *conn) flush() (finished int) {
	for !c.closing && !c.parked {
		if c.tls != nil && c.tls.outPending() {
			st, err := c.drainTLS()
			if err != nil {
				c.writeFailed(err)
				return finished
			}
			if st == blocked {
				c.park()
				return finished
			}
		}
		if c.closeAfterOut {
			c.closeWith(CloseHandler)
			return finished
		}
		r := c.head()
		if r == nil {
			return finished
		}
		c.mu.Lock()
		done := r.done
		c.mu.Unlock()
		if !done {
			return finished
		}
		if r.bad {
			c.s.warn.Warn().Uint64("conn", c.info.ID).Stringer("remote", c.info.Remote).Msg("handler gave a response that cannot be written, closing")
			c.closeWith(CloseBadResponse)
			return finished
		}
		if c.skipWritten(r) {
			finished += c.complete(r)
			continue
		}
		if c.budget <= 0 {
			c.schedule()
			return finished
		}
		var (
			st  writeStatus
			n   int
			err error
		)
		if w := &c.w; w.hdrOff < sizePrefixBytes || r.resp.Parts[w.part].File == nil {
			st, n, err = c.writeBytes(r)
			finished += n
		} else {
			st, err = c.writeFile(&r.resp.Parts[w.part])
		}
		if err != nil {
			c.writeFailed(err)
			return finished
		}
		if st == blocked {
			c.park()
			return finished
		}
	}
	return finished
}

// writeFailed closes after a failed write. Loop only.
func (c *conn) writeFailed(err error) {
	reason := CloseWriteError
	if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) {
		reason = ClosePeer
	} else {
		c.s.warn.Warn().Uint64("conn", c.info.ID).Stringer("remote", c.info.Remote).Err(err).Msg("write failed, closing")
	}
	c.closeWith(reason)
}

// skipWritten moves the write position past finished parts and reports
// whether r is completely written (always, for an empty response). Loop only.
func (c *conn) skipWritten(r *Request) bool {
	if r.size == 0 {
		return true
	}
	w, parts := &c.w, r.resp.Parts
	for w.part < len(parts) && w.off == partLen(&parts[w.part]) {
		putBuf(w.chunk)
		w.part, w.off, w.copyMode, w.chunk, w.chunkOff, w.chunkN = w.part+1, 0, false, nil, 0, 0
	}
	return w.hdrOff == sizePrefixBytes && w.part == len(parts)
}

// complete retires the head request r, whose response is written. Loop only.
func (c *conn) complete(r *Request) int {
	closeAfter := r.resp.Close
	c.w.reset()
	c.popHead()
	c.finish(r)
	if closeAfter {
		if c.tls != nil && c.tls.outPending() {
			c.closeAfterOut = true // flush closes once the ciphertext is out
		} else {
			c.closeWith(CloseHandler)
		}
	}
	return 1
}

// finish accounts for a written response and releases it. Loop only.
func (c *conn) finish(r *Request) {
	c.inflightReqs--
	c.inflightBytes -= int64(r.frameSize)
	if r.size > 0 {
		c.queuedB.Add(-r.size)
		c.s.st.queuedBytes.Add(-r.size)
	}
	c.s.st.inflightRequests.Add(-1)
	if c.s.obs != nil && r.arrived != 0 {
		c.s.obs.Written(r, time.Duration(nanotime()-r.arrived))
	}
	r.release()
}

func partLen(p *Part) int64 {
	if p.File != nil {
		return p.Len
	}
	return int64(len(p.Bytes))
}

// writeBytes writes, with one writev, the head response from its write
// position up to its next file part, and when it has none, the completed
// byte-only responses queued behind it. It retires the responses it wrote
// whole and returns how many. Loop only.
func (c *conn) writeBytes(r *Request) (writeStatus, int, error) {
	iovp := iovPool.Get().(*[][]byte)
	iov, toEnd := appendRegion((*iovp)[:0], r, &c.w)
	if toEnd && !r.resp.Close {
		c.mu.Lock()
		for _, q := range c.queue[c.qHead+1:] {
			if !q.done || q.bad || q.file || len(iov)+1+len(q.resp.Parts) > maxIovecs {
				break
			}
			iov, _ = appendRegion(iov, q, &writeState{})
			if q.resp.Close {
				break
			}
		}
		c.mu.Unlock()
	}
	var (
		n   int
		err error
	)
	if c.tls != nil {
		n, err = c.writevTLS(iov)
	} else {
		n, err = unix.Writev(c.gc.Fd(), iov)
	}
	clear(iov)
	*iovp = iov[:0]
	iovPool.Put(iovp)

	var finished int
	if n > 0 {
		c.wrote(n)
		for {
			r := c.head()
			n = c.advance(r, n)
			if !c.skipWritten(r) {
				break
			}
			finished += c.complete(r)
			if n == 0 || c.closing {
				break
			}
		}
	}
	st, err := writeResult(err)
	return st, finished, err
}

// appendRegion appends to iov the bytes of r from position w up to its next
// file part (or its end, then toEnd is true), within maxIovecs.
func appendRegion(iov [][]byte, r *Request, w *writeState) (_ [][]byte, toEnd bool) {
	if r.size == 0 {
		return iov, true
	}
	if w.hdrOff < sizePrefixBytes {
		iov = append(iov, r.hdr[w.hdrOff:])
	}
	parts := r.resp.Parts
	i := w.part
	for ; i < len(parts) && parts[i].File == nil && len(iov) < maxIovecs; i++ {
		b := parts[i].Bytes
		if i == w.part {
			b = b[w.off:]
		}
		if len(b) > 0 {
			iov = append(iov, b)
		}
	}
	return iov, i == len(parts)
}

// advance moves the head's write position up to n bytes through its prefix
// and byte parts, and returns what is left of n past the head's end.
func (c *conn) advance(r *Request, n int) int {
	if r.size == 0 {
		return n
	}
	w, parts := &c.w, r.resp.Parts
	if w.hdrOff < sizePrefixBytes {
		k := min(n, sizePrefixBytes-w.hdrOff)
		w.hdrOff += k
		n -= k
	}
	for n > 0 && w.part < len(parts) {
		rem := len(parts[w.part].Bytes) - int(w.off)
		if n < rem {
			w.off += int64(n)
			return 0
		}
		n -= rem
		w.part, w.off = w.part+1, 0
	}
	return n
}

// writeFile sends the current file part: sendfile from its descriptor, or
// ReadAt into a pooled chunk and write when it has none or the kernel refuses.
func (c *conn) writeFile(p *Part) (writeStatus, error) {
	w, fd := &c.w, c.gc.Fd()
	if !w.copyMode {
		ffd := p.File.Fd()
		if ffd == ^uintptr(0) || c.tls != nil { // sendfile would bypass TLS
			w.copyMode = true
		} else {
			off := p.Off + w.off
			n, err := unix.Sendfile(fd, int(ffd), &off, int(min(p.Len-w.off, maxSendfileBytes)))
			if n > 0 {
				w.off += int64(n)
				c.wrote(n)
				c.s.st.sendfileBytes.Add(int64(n))
			}
			switch {
			case err == nil && n == 0:
				return wrote, errShortFile // a truncated file would spin
			case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS):
				w.copyMode = true // fall through to the copy below
			default:
				return writeResult(err)
			}
		}
	}

	if w.chunkOff == w.chunkN {
		if w.chunk == nil {
			w.chunk = getBuf(copyChunkBytes)
		}
		want := min(p.Len-w.off, int64(len(*w.chunk)))
		n, err := p.File.ReadAt((*w.chunk)[:want], p.Off+w.off)
		if n <= 0 {
			if err == nil || errors.Is(err, io.EOF) {
				err = errShortFile
			}
			return wrote, err
		}
		w.chunkOff, w.chunkN = 0, n
	}
	var n int
	var err error
	if c.tls != nil {
		n, err = c.writevTLS([][]byte{(*w.chunk)[w.chunkOff:w.chunkN]})
	} else {
		n, err = unix.Write(fd, (*w.chunk)[w.chunkOff:w.chunkN])
	}
	if n > 0 {
		w.chunkOff += n
		w.off += int64(n)
		c.wrote(n)
		c.s.st.fileCopyBytes.Add(int64(n))
	}
	return writeResult(err)
}

func writeResult(err error) (writeStatus, error) {
	switch {
	case err == nil, errors.Is(err, unix.EINTR):
		return wrote, nil
	case errors.Is(err, unix.EAGAIN):
		return blocked, nil
	default:
		return wrote, err
	}
}

func (c *conn) wrote(n int) {
	c.budget -= int64(n)
	c.s.st.bytesOut.Add(int64(n))
	c.active.Store(true)
}

// park waits for the socket to drain. gnet offers no writable callback, so a
// goroutine waits on a dup of the socket through Go's own poller and then
// resumes the connection on its loop. Loop only.
func (c *conn) park() {
	if c.dup == nil {
		fd, err := c.gc.Dup()
		if err != nil {
			c.s.warn.Warn().Uint64("conn", c.info.ID).Err(err).Msg("dup socket, closing")
			c.closeWith(CloseWriteError)
			return
		}
		c.dup = os.NewFile(uintptr(fd), "netloop-socket")
	}
	c.parked = true
	c.s.st.writeParks.Add(1)
	go c.awaitWritable(c.dup)
}

// awaitWritable runs on its own goroutine until the socket takes bytes again
// or the connection closes (OnClose closes the dup, which ends the wait).
func (c *conn) awaitWritable(f *os.File) {
	rc, err := f.SyscallConn()
	if err == nil {
		checked := false
		err = rc.Write(func(fd uintptr) bool {
			if checked {
				return true // the poller saw the socket become writable
			}
			checked = true
			// RawWrite has just reset the poller's write readiness, so an
			// edge between the loop's EAGAIN and now is lost: ask the socket.
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			n, _ := unix.Poll(pfd, 0)
			return n > 0
		})
	}
	c.mu.Lock()
	if !c.closed {
		if err != nil {
			c.reason.CompareAndSwap(0, int32(CloseWriteError)+1)
			_ = c.gc.Close()
		} else {
			_ = c.gc.EventLoop().Execute(context.Background(), c.writableFn)
		}
	}
	c.mu.Unlock()
}
