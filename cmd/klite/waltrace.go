package main

import (
	"bufio"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/klite/klite/storage"
)

// walTracer writes the WAL's trace events (-wal-trace) as JSON lines, one
// per event, so a latency spike can be laid against the group commits,
// fdatasyncs, rolls and segment preparation around it. The store's
// goroutines never wait for it: events that find the buffer full are
// counted and dropped.
type walTracer struct {
	ch      chan storage.TraceEvent
	dropped atomic.Int64
	done    chan error
	f       *os.File
}

// walTraceBuffer events may wait for the file; at a few thousand events
// per second that is seconds of a slow disk.
const walTraceBuffer = 1 << 16

func openWALTrace(path string) (*walTracer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	t := &walTracer{ch: make(chan storage.TraceEvent, walTraceBuffer), done: make(chan error, 1), f: f}
	go t.run()
	return t, nil
}

// event is storage.Config.Trace.
func (t *walTracer) event(ev storage.TraceEvent) {
	select {
	case t.ch <- ev:
	default:
		t.dropped.Add(1)
	}
}

func (t *walTracer) run() {
	w := bufio.NewWriterSize(t.f, 256<<10)
	flush := time.NewTicker(200 * time.Millisecond)
	defer flush.Stop()
	var line []byte
	var err error
	for {
		select {
		case ev, ok := <-t.ch:
			if !ok {
				line = strconv.AppendInt(append(line[:0], `{"kind":"dropped","n":`...), t.dropped.Load(), 10)
				line = append(line, "}\n"...)
				_, _ = w.Write(line)
				if ferr := w.Flush(); err == nil {
					err = ferr
				}
				t.done <- err
				return
			}
			line = appendTraceEvent(line[:0], ev)
			if _, werr := w.Write(line); err == nil {
				err = werr
			}
		case <-flush.C:
			if ferr := w.Flush(); err == nil {
				err = ferr
			}
		}
	}
}

// appendTraceEvent formats ev as one JSON line; times in microseconds,
// the start as Unix microseconds.
func appendTraceEvent(b []byte, ev storage.TraceEvent) []byte {
	b = append(b, `{"t_us":`...)
	b = strconv.AppendInt(b, ev.Start.UnixMicro(), 10)
	b = append(b, `,"kind":"`...)
	b = append(b, ev.Kind.String()...)
	b = append(b, `","shard":`...)
	b = strconv.AppendInt(b, int64(ev.Shard), 10)
	b = append(b, `,"dur_us":`...)
	b = strconv.AppendInt(b, ev.Dur.Microseconds(), 10)
	b = append(b, `,"wait_us":`...)
	b = strconv.AppendInt(b, ev.Wait.Microseconds(), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, ev.Bytes, 10)
	b = append(b, `,"n":`...)
	b = strconv.AppendInt(b, int64(ev.N), 10)
	return append(b, "}\n"...)
}

// close stops the tracer once the store no longer reports (after it is
// closed) and flushes what is buffered.
func (t *walTracer) close() error {
	close(t.ch)
	err := <-t.done
	if cerr := t.f.Close(); err == nil {
		err = cerr
	}
	return err
}
