package scenario

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// nonTTYEvery is how often the progress line is printed when stderr is not a
// terminal (a log file should not get one line per second for 15 minutes).
const nonTTYEvery = 5 * time.Second

// Progress prints a live status line: rewritten in place on a terminal,
// every few seconds as plain lines otherwise. Safe for concurrent use; a nil
// *Progress prints nothing.
type Progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	last  time.Time // guarded by mu
	dirty bool      // a line is on screen without a newline; guarded by mu
}

// NewProgress writes to w; terminal detection applies when w is a file.
func NewProgress(w io.Writer) *Progress {
	p := &Progress{w: w}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.tty = err == nil
	}
	return p
}

// Update shows the status line.
func (p *Progress) Update(format string, a ...any) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	line := fmt.Sprintf(format, a...)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.dirty = true
		return
	}
	if time.Since(p.last) >= nonTTYEvery {
		p.last = time.Now()
		fmt.Fprintln(p.w, line)
	}
}

// Logf prints a permanent line (ending any status line first).
func (p *Progress) Logf(format string, a ...any) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dirty {
		fmt.Fprint(p.w, "\r\033[K")
		p.dirty = false
	}
	fmt.Fprintf(p.w, format+"\n", a...)
	p.last = time.Time{}
}

// Done clears the status line.
func (p *Progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dirty {
		fmt.Fprint(p.w, "\r\033[K")
		p.dirty = false
	}
	p.last = time.Time{}
}
