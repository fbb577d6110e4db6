package storage

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkOpen measures Open with the default segment size on the real
// file system (and reports Close and the disk blocks an empty store holds,
// fallocated or written):
//
//   - empty: a new directory each time (a broker's first start, every test);
//   - data: a 2-shard store holding about 1 GiB, reopened with its pages in
//     the page cache (warm) or dropped from it first (cold, fadvise on the
//     store's own files only). KLITE_OPEN_BENCH_DIR names a directory to
//     keep it in between runs.
//
// Run it with -benchtime=Nx: every iteration is a whole Open.
func BenchmarkOpen(b *testing.B) {
	b.Run("empty", func(b *testing.B) {
		root := b.TempDir()
		var closeTook time.Duration
		var disk int64
		b.StopTimer()
		for i := 0; i < b.N; i++ {
			dir := filepath.Join(root, strconv.Itoa(i))
			b.StartTimer()
			s := mustOpen(b, Config{Dir: dir, Shards: 2})
			b.StopTimer()
			t0 := time.Now()
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			closeTook += time.Since(t0)
			disk += diskBytes(b, dir)
			if err := os.RemoveAll(dir); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(closeTook.Microseconds())/float64(b.N)/1000, "close-ms/op")
		b.ReportMetric(float64(disk)/float64(b.N)/(1<<20), "disk-MiB/op")
	})
	// KLITE_OPEN_BENCH_DIR keeps the 1 GiB store between runs (filled when
	// missing), so two versions of the code can be compared on one store.
	dir := os.Getenv("KLITE_OPEN_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	if ok, _ := Initialized(dir); !ok {
		fillStore(b, Config{Dir: dir, Shards: 2}, 1<<30)
	}
	for _, cold := range []bool{false, true} {
		name := "data=1GiB/warm"
		if cold {
			name = "data=1GiB/cold"
		}
		b.Run(name, func(b *testing.B) {
			var rs RecoveryStats
			b.StopTimer()
			for i := 0; i < b.N; i++ {
				if cold {
					dropCache(b, dir)
				}
				b.StartTimer()
				s := mustOpen(b, Config{Dir: dir, Shards: 2})
				b.StopTimer()
				rs = s.Stats().Recovery
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rs.Bytes)/(1<<20), "recovered-MiB")
			b.ReportMetric(float64(rs.Scanned), "scanned-segs")
		})
	}
}

// fillStore writes about n bytes of 64 KiB batches over 8 partitions.
func fillStore(b *testing.B, cfg Config, n int64) {
	s := mustOpen(b, cfg)
	defer s.Close()
	mustCreate(b, s, "t", 8)
	batch := makeBatch(batchSpec{value: make([]byte, 64<<10)})
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := int64(0); i*int64(len(batch)) < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		s.Append("t", int32(i%8), batch, i%16 == 0, func(r AppendResult) {
			if r.Err != nil {
				b.Error(r.Err)
			}
			<-sem
			wg.Done()
		})
	}
	wg.Wait()
}

func diskBytes(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// dropCache evicts the store's files from the page cache.
func dropCache(b *testing.B, dir string) {
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	})
	if err != nil {
		b.Fatal(err)
	}
}
