package tier

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klite/klite/tier/s3store"
	"github.com/klite/klite/tier/s3test"
)

// Integration tests run against versitygw (a real S3 server, posix
// backend) on loopback, started by s3test. scripts/versitygw.sh installs it
// into a cache dir the first time (a build of minutes; `make test` runs that
// step first, see the Makefile). KLITE_S3_TESTS=0 skips them, saying so.
const (
	vgwAccess = s3test.Access
	vgwSecret = s3test.Secret
	vgwBucket = "klite-test"
)

// startVersitygw runs a fresh versitygw with an empty bucket and returns
// its endpoint. It is stopped (and its log printed on failure) at cleanup,
// and dies with the test process (Pdeathsig).
func startVersitygw(t *testing.T) string { return s3test.StartT(t, vgwBucket) }

func newVersitygwStore(t *testing.T, endpoint string, hc *http.Client) *s3store.Store {
	s, err := s3store.New(context.Background(), s3store.Config{
		Bucket: vgwBucket, Prefix: "klite/", Endpoint: endpoint, Region: "us-east-1",
		AccessKey: vgwAccess, SecretKey: vgwSecret,
		MultipartBytes: 6 << 20, PartBytes: 5 << 20, PartConcurrency: 3,
		MaxAttempts: 6, MaxBackoff: 50 * time.Millisecond, HTTPClient: hc,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestS3StoreVersitygw(t *testing.T) {
	endpoint := startVersitygw(t)
	testObjectStore(t, newVersitygwStore(t, endpoint, nil), 6<<20)
}

// flakyTransport answers every nth request with a 503 SlowDown before it
// reaches the server, as S3 does under load; the SDK's retryer must absorb
// them.
type flakyTransport struct {
	next     http.RoundTripper
	n        int64
	calls    atomic.Int64
	injected atomic.Int64
}

func (f *flakyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if f.calls.Add(1)%f.n == 0 {
		f.injected.Add(1)
		if req.Body != nil {
			io.Copy(io.Discard, req.Body)
			req.Body.Close()
		}
		body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>`
		return &http.Response{StatusCode: 503, Status: "503 Slow Down", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)), Request: req}, nil
	}
	return f.next.RoundTrip(req)
}

// TestS3UploadReadRoundTrip: the uploader puts several partitions'
// sealed data into versitygw (objects over 6 MiB as multipart) through a
// transport that fails every 5th request; the reader, from a manifest
// loaded from the bucket alone, returns every chunk byte for byte.
func TestS3UploadReadRoundTrip(t *testing.T) {
	endpoint := startVersitygw(t)
	ft := &flakyTransport{next: http.DefaultTransport.(*http.Transport).Clone(), n: 5}
	store := newVersitygwStore(t, endpoint, &http.Client{Transport: ft})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rng := newRand(31)
	src := newTestSource(t)
	parts := []Partition{testPart(0), testPart(1), testPart(2)}
	src.addSegment(rng, parts, 70, 200_000) // ~7 MB per partition
	src.addSegment(rng, parts, 20, 2_000)
	up := testUploader(store, src, 8<<20)
	if err := up.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	if ft.injected.Load() == 0 {
		t.Fatal("no faults injected")
	}
	clean := newVersitygwStore(t, endpoint, nil)
	r := NewReader(ReaderConfig{Store: clean, CacheBytes: 4 << 20, ReadAheadBytes: 1 << 20})
	multipart := 0
	for _, p := range parts {
		m, err := LoadManifest(ctx, clean, p)
		if err != nil {
			t.Fatal(err)
		}
		if m.NextOffset() != src.sealed[p] {
			t.Fatalf("%v: tier ends at %d, sealed %d", p, m.NextOffset(), src.sealed[p])
		}
		for _, o := range m.Objects {
			if o.Size >= 6<<20 {
				multipart++
			}
		}
		expectRead(t, ctx, r, m, src, 1)
		expectRead(t, ctx, r, m, src, 3<<20)
		// The whole data section of each object equals the source's bytes.
		var pos int64
		for i, o := range m.Objects {
			got := make([]byte, o.DataBytes)
			if err := clean.GetRange(ctx, m.ObjectKey(i), 0, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, src.data[p][pos:pos+o.DataBytes]) {
				t.Fatalf("%v object %d differs from the source", p, i)
			}
			pos += o.DataBytes
		}
	}
	if multipart == 0 {
		t.Fatal("no object was large enough for multipart")
	}
	t.Logf("%d requests, %d injected 503s, %d multipart objects, reader %+v", ft.calls.Load(), ft.injected.Load(), multipart, r.Stats())
}
