package group

import (
	"testing"

	"github.com/rs/zerolog"

	"github.com/klite/klite/vfs"
)

// nosyncFS is the OS file system with fdatasync left out, so a benchmark
// measures the log's own cost (a real pwrite per write) and not the disk.
type nosyncFS struct{ vfs.FS }

type nosyncFile struct{ vfs.File }

func (nosyncFile) Sync() error { return nil }

func (fs nosyncFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return nosyncFile{f}, nil
}

func (fs nosyncFS) OpenRW(name string) (vfs.File, error) {
	f, err := fs.FS.OpenRW(name)
	if err != nil {
		return nil, err
	}
	return nosyncFile{f}, nil
}

// BenchmarkLogCommit is the offsets log's cost per acknowledged
// one-partition commit without the fdatasync: encode, write marker and
// CRC, pwrite, apply, acknowledge. "parallel" lets concurrent committers
// share writes (group commit).
func BenchmarkLogCommit(b *testing.B) {
	open := func(b *testing.B) *offsetsLog {
		l, err := openLog(nosyncFS{vfs.OSFS{}}, b.TempDir(), logOptions{compactBytes: 1 << 40}, zerolog.Nop())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { l.close() })
		return l
	}
	b.Run("serial", func(b *testing.B) {
		l := open(b)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := commitSync(l, "g", TP{"t", int32(i % 64)}, int64(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		l := open(b)
		b.ReportAllocs()
		b.SetParallelism(8) // committers per CPU
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				if err := commitSync(l, "g", TP{"t", int32(i % 64)}, int64(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(l.syncs.Load())/float64(b.N), "writes/op")
	})
}
