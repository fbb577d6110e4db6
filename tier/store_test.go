package tier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/klite/klite/tier/s3store"
)

// testObjectStore is the contract every ObjectStore meets.
func testObjectStore(t *testing.T, s ObjectStore, multipartBytes int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rng := newRand(1)
	obj := make([]byte, 100_000)
	for i := range obj {
		obj[i] = byte(rng.Uint32())
	}

	t.Run("PutGetRanges", func(t *testing.T) {
		if err := s.Put(ctx, "a/obj", bytes.NewReader(obj), int64(len(obj)), PutOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, r := range [][2]int{{0, 1}, {0, len(obj)}, {1, 99}, {len(obj) - 1, 1}, {4096, 65536}} {
			p := make([]byte, r[1])
			if err := s.GetRange(ctx, "a/obj", int64(r[0]), p); err != nil {
				t.Fatalf("range %v: %v", r, err)
			}
			if !bytes.Equal(p, obj[r[0]:r[0]+r[1]]) {
				t.Fatalf("range %v: wrong bytes", r)
			}
		}
		info, err := s.Head(ctx, "a/obj")
		if err != nil || info.Size != int64(len(obj)) || info.Key != "a/obj" {
			t.Fatalf("head: %+v %v", info, err)
		}
		if err := s.GetRange(ctx, "a/obj", int64(len(obj)), make([]byte, 1)); !errors.Is(err, ErrRange) {
			t.Fatalf("range past end: %v, want ErrRange", err)
		}
		if err := s.GetRange(ctx, "a/missing", 0, make([]byte, 1)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get missing: %v, want ErrNotFound", err)
		}
		if _, err := s.Head(ctx, "a/missing"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("head missing: %v, want ErrNotFound", err)
		}
	})

	t.Run("ConditionalPut", func(t *testing.T) {
		put := func(body string) error {
			return s.Put(ctx, "c/v/1", bytes.NewReader([]byte(body)), int64(len(body)), PutOptions{IfNoneMatch: true})
		}
		if err := put("first"); err != nil {
			t.Fatal(err)
		}
		if err := put("second"); !errors.Is(err, ErrExists) {
			t.Fatalf("second conditional put: %v, want ErrExists", err)
		}
		got, err := Get(ctx, s, "c/v/1", 100)
		if err != nil || string(got) != "first" {
			t.Fatalf("after lost race: %q %v", got, err)
		}
	})

	t.Run("ListDelete", func(t *testing.T) {
		var want []string
		for i := range 12 {
			k := fmt.Sprintf("l/%03d", i)
			want = append(want, k)
			if err := s.Put(ctx, k, bytes.NewReader([]byte{byte(i)}), 1, PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Put(ctx, "lz", bytes.NewReader(nil), 0, PutOptions{}); err != nil {
			t.Fatal(err)
		}
		list := func(prefix, after string) []string {
			var got []string
			if err := s.List(ctx, prefix, after, func(o ObjectInfo) error {
				got = append(got, o.Key)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return got
		}
		if got := list("l/", ""); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("list: %v, want %v", got, want)
		}
		if got := list("l/", "l/009"); fmt.Sprint(got) != fmt.Sprint(want[10:]) {
			t.Fatalf("list after l/009: %v", got)
		}
		stop := errors.New("stop")
		if err := s.List(ctx, "l/", "", func(ObjectInfo) error { return stop }); err != stop {
			t.Fatalf("list stop: %v", err)
		}
		for _, k := range want[:6] {
			if err := s.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Delete(ctx, "l/never"); err != nil {
			t.Fatalf("delete missing: %v", err)
		}
		if got := list("l/", ""); fmt.Sprint(got) != fmt.Sprint(want[6:]) {
			t.Fatalf("list after delete: %v", got)
		}
	})

	t.Run("Multipart", func(t *testing.T) {
		big := make([]byte, multipartBytes+3_000_001)
		for i := range big {
			big[i] = byte(i * 7)
		}
		body := newSectionsReader([]section{{r: bytes.NewReader(big[:1_000_000]), n: 1_000_000}, {mem: big[1_000_000:], n: int64(len(big) - 1_000_000)}})
		if err := s.Put(ctx, "m/big", body, body.Size(), PutOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err := Get(ctx, s, "m/big", int64(len(big)))
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("multipart round trip: %d bytes, err %v", len(got), err)
		}
		if _, ok := s.(*s3store.Store); ok {
			// S3 ETags of multipart objects end in -<parts>.
			if info, err := s.Head(ctx, "m/big"); err != nil || !strings.Contains(info.ETag, "-") {
				t.Fatalf("not a multipart object: %+v %v", info, err)
			}
		}
	})
}

func TestMemStore(t *testing.T) {
	testObjectStore(t, NewMemStore(), 6<<20)
}

func TestMemStoreFaults(t *testing.T) {
	ctx := context.Background()
	m := NewMemStore()
	m.FailNth(OpPut, 2, nil)
	put := func() error { return m.Put(ctx, "k", bytes.NewReader([]byte("x")), 1, PutOptions{}) }
	if err := put(); err != nil {
		t.Fatal(err)
	}
	if err := put(); !errors.Is(err, ErrInjected) {
		t.Fatalf("2nd put: %v, want injected", err)
	}
	if err := put(); err != nil {
		t.Fatal(err)
	}
	m.SetLatency(time.Hour)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := m.GetRange(cctx, "k", 0, make([]byte, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("latency with cancelled ctx: %v", err)
	}
}

func TestSectionsReader(t *testing.T) {
	src := []byte("0123456789abcdefghij")
	r := newSectionsReader([]section{
		{r: bytes.NewReader(src), pos: 0, n: 5},
		{mem: src[5:12], n: 7},
		{r: bytes.NewReader(src), pos: 12, n: 8},
	})
	for off := 0; off <= len(src); off++ {
		for n := 0; off+n <= len(src); n++ {
			p := make([]byte, n)
			got, err := r.ReadAt(p, int64(off))
			if got != n || (err != nil && n > 0) || !bytes.Equal(p, src[off:off+n]) {
				t.Fatalf("ReadAt(%d,%d) = %d %v %q", off, n, got, err, p)
			}
		}
	}
	if _, err := r.Seek(3, 0); err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	if _, err := all.ReadFrom(r); err != nil || all.String() != string(src[3:]) {
		t.Fatalf("read after seek: %q %v", all.String(), err)
	}
}
