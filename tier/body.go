package tier

import (
	"errors"
	"io"
	"sort"
)

// bytesReader is a seekable, ReaderAt body over a byte slice.
func newBytesReader(b []byte) *sectionsReader {
	return newSectionsReader([]section{{mem: b, n: int64(len(b))}})
}

// section is one piece of an object body: a file range or memory.
type section struct {
	r   io.ReaderAt // nil: mem
	pos int64
	mem []byte
	n   int64
	off int64 // position in the body (set by newSectionsReader)
}

// sectionsReader concatenates sections into one body that is an
// io.ReadSeeker (for signing and retries) and an io.ReaderAt (so multipart
// parts are read concurrently, straight from the segment files, without
// buffering the object).
type sectionsReader struct {
	secs []section
	size int64
	cur  int64
}

func newSectionsReader(secs []section) *sectionsReader {
	var off int64
	for i := range secs {
		secs[i].off = off
		off += secs[i].n
	}
	return &sectionsReader{secs: secs, size: off}
}

func (s *sectionsReader) Size() int64 { return s.size }

func (s *sectionsReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("tier: negative offset")
	}
	if off >= s.size {
		return 0, io.EOF
	}
	i := sort.Search(len(s.secs), func(i int) bool { return s.secs[i].off+s.secs[i].n > off })
	n := 0
	for ; i < len(s.secs) && n < len(p); i++ {
		sec := &s.secs[i]
		rel := off + int64(n) - sec.off
		want := min(int64(len(p)-n), sec.n-rel)
		if sec.r == nil {
			copy(p[n:], sec.mem[rel:rel+want])
		} else if _, err := sec.r.ReadAt(p[n:n+int(want)], sec.pos+rel); err != nil {
			return n, err
		}
		n += int(want)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (s *sectionsReader) Read(p []byte) (int, error) {
	if s.cur >= s.size {
		return 0, io.EOF
	}
	if rem := s.size - s.cur; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := s.ReadAt(p, s.cur)
	s.cur += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (s *sectionsReader) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += s.cur
	case io.SeekEnd:
		off += s.size
	default:
		return 0, errors.New("tier: bad whence")
	}
	if off < 0 {
		return 0, errors.New("tier: negative position")
	}
	s.cur = off
	return off, nil
}
