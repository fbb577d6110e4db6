package netloop

import (
	"bufio"
	"fmt"
	"io"
	"testing"
)

// BenchmarkEchoPipelined measures round trips of small frames through a real
// socket: one connection, requests pipelined as fast as the server takes them.
func BenchmarkEchoPipelined(b *testing.B) {
	for _, size := range []int{100, 16 << 10} {
		b.Run(fmt.Sprintf("frame=%d", size), func(b *testing.B) {
			s := startServer(b, Config{}, echo)
			pipelineEcho(b, dial(b, s), size)
		})
	}
}

// BenchmarkEchoPipelinedTLS is BenchmarkEchoPipelined over TLS 1.3: the
// loop decrypts each record (tlsPipe, tls_bufs.go) and encrypts the echo.
// The client's TLS runs in the same process, so compare runs, not to plaintext.
func BenchmarkEchoPipelinedTLS(b *testing.B) {
	for _, size := range []int{100, 16 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("frame=%d", size), func(b *testing.B) {
			cfg, ca := tlsListeners(b, nil)
			s := startServer(b, cfg, echo)
			pipelineEcho(b, dialTLS(b, s, ca, nil), size)
		})
	}
}

// pipelineEcho writes b.N frames of size bytes on c as fast as the server
// takes them while reading their echoes.
func pipelineEcho(b *testing.B, c *client, size int) {
	req := frameBytes(make([]byte, size))
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	done := make(chan error, 1)
	go func() {
		br := bufio.NewReaderSize(c.c, 256<<10)
		buf := make([]byte, len(req))
		for range b.N {
			if _, err := io.ReadFull(br, buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	w := bufio.NewWriterSize(c.c, 64<<10)
	for range b.N {
		w.Write(req)
	}
	w.Flush()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
