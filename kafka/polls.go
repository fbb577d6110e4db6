package kafka

import (
	"context"
	"sync"
)

// connPolls are the long polls of one connection. The first one registers a
// single context.AfterFunc on the connection's context (netloop cancels it
// when the connection closes); on close all of them are dropped in one
// goroutine. One registration per connection rather than per fetch: tens of
// thousands of fetches abandoned at once would otherwise each start a
// goroutine and contend on the connection context's lock.
type connPolls struct {
	id uint64

	mu     sync.Mutex
	polls  map[*fetchWait]struct{} // guarded by mu
	closed bool                    // the connection closed, guarded by mu
}

// trackResult says why a poll could not be tracked.
type trackResult uint8

const (
	tracked         trackResult = iota
	trackConnGone               // the connection closed: drop the fetch
	trackHandlerOff             // Handler.Close ran: answer now
)

// track registers a waiting fetch with its connection, so a close or
// Handler.Close can end it.
func (h *Handler) track(f *fetchWait) trackResult {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return trackHandlerOff
	}
	id := f.r.nr.Conn.ID
	cp := h.conns[id]
	fresh := cp == nil
	if fresh {
		cp = &connPolls{id: id, polls: make(map[*fetchWait]struct{})}
		h.conns[id] = cp
	}
	h.mu.Unlock()
	if fresh {
		// Runs at once (on its own goroutine) if the connection is gone.
		context.AfterFunc(f.r.nr.Context(), func() { h.connClosed(cp) })
	}
	f.mu.Lock()
	f.cp = cp
	f.mu.Unlock()
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.closed {
		return trackConnGone
	}
	cp.polls[f] = struct{}{}
	return tracked
}

// untrack removes a fetch registered by track; others are ignored.
func (h *Handler) untrack(f *fetchWait) {
	cp := f.trackedBy()
	if cp == nil {
		return
	}
	cp.mu.Lock()
	delete(cp.polls, f)
	cp.mu.Unlock()
}

// connClosed drops every long poll of a closed connection.
func (h *Handler) connClosed(cp *connPolls) {
	h.mu.Lock()
	if h.conns[cp.id] == cp {
		delete(h.conns, cp.id)
	}
	h.mu.Unlock()
	cp.mu.Lock()
	cp.closed = true
	polls := cp.polls
	cp.polls = nil
	cp.mu.Unlock()
	for f := range polls {
		f.abandon()
	}
}

// allPolls returns every tracked long poll (for Close).
func (h *Handler) allPolls() []*fetchWait {
	h.mu.Lock()
	cps := make([]*connPolls, 0, len(h.conns))
	for _, cp := range h.conns {
		cps = append(cps, cp)
	}
	h.mu.Unlock()
	var fs []*fetchWait
	for _, cp := range cps {
		cp.mu.Lock()
		for f := range cp.polls {
			fs = append(fs, f)
		}
		cp.mu.Unlock()
	}
	return fs
}
