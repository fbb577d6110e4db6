package tier

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
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
func startVersitygw(t *testing.T) string {
	t.Helper()
	if os.Getenv("KLITE_S3_TESTS") == "0" {
		t.Skip("KLITE_S3_TESTS=0: S3 integration tests against versitygw skipped")
	}
	var log syncBuffer
	srv, err := s3test.Start(context.Background(), t.TempDir(), vgwBucket, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Cleanup(func() {
		srv.Stop()
		if t.Failed() {
			t.Logf("versitygw log:\n%s", log.String())
		}
	})
	return srv.Endpoint
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newVersitygwStore(t *testing.T, endpoint string, hc *http.Client) *S3Store {
	s, err := NewS3Store(context.Background(), S3Config{
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

// TestS3RetriesExhausted: when every attempt fails the store returns the
// error after exactly MaxAttempts requests, not before and not forever.
func TestS3RetriesExhausted(t *testing.T) {
	endpoint := startVersitygw(t)
	ft := &flakyTransport{next: http.DefaultTransport.(*http.Transport).Clone(), n: 1}
	store := newVersitygwStore(t, endpoint, &http.Client{Transport: ft}) // MaxAttempts 6
	err := store.Put(context.Background(), "x", bytes.NewReader([]byte("y")), 1, PutOptions{})
	if err == nil || !strings.Contains(err.Error(), "SlowDown") {
		t.Fatalf("put through a dead transport: %v", err)
	}
	if got := ft.calls.Load(); got != 6 {
		t.Fatalf("%d requests, want MaxAttempts (6)", got)
	}
}

// onlyReadSeeker hides a body's io.ReaderAt, so multipart parts are read in
// turn into memory.
type onlyReadSeeker struct{ io.ReadSeeker }

// partFailTransport answers every UploadPart request for one part number
// with 403 AccessDenied (not retried), passing everything else on.
type partFailTransport struct {
	next http.RoundTripper
	part string
}

func (f *partFailTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPut || req.URL.Query().Get("partNumber") != f.part {
		return f.next.RoundTrip(req)
	}
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>injected</Message></Error>`
	return &http.Response{StatusCode: 403, Status: "403 Forbidden", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: req}, nil
}

// TestS3Multipart: a multipart put from a body without io.ReaderAt reads
// back byte for byte; a multipart put whose second part fails returns the
// error and aborts the upload, leaving neither the object nor its parts.
func TestS3Multipart(t *testing.T) {
	endpoint := startVersitygw(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rng := newRand(7)
	obj := make([]byte, 11<<20) // parts of 5, 5 and 1 MiB
	for i := range obj {
		obj[i] = byte(rng.Uint32())
	}
	s := newVersitygwStore(t, endpoint, nil)
	if err := s.Put(ctx, "m/seq", onlyReadSeeker{bytes.NewReader(obj)}, int64(len(obj)), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(obj))
	if err := s.GetRange(ctx, "m/seq", 0, got); err != nil || !bytes.Equal(got, obj) {
		t.Fatalf("read back: equal %v, %v", bytes.Equal(got, obj), err)
	}

	for _, body := range []io.ReadSeeker{bytes.NewReader(obj), onlyReadSeeker{bytes.NewReader(obj)}} {
		tr := &partFailTransport{next: http.DefaultTransport.(*http.Transport).Clone(), part: "2"}
		failing := newVersitygwStore(t, endpoint, &http.Client{Transport: tr})
		err := failing.Put(ctx, "m/fail", body, int64(len(obj)), PutOptions{})
		if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
			t.Fatalf("put with a failing part (%T): %v", body, err)
		}
		if _, err := s.Head(ctx, "m/fail"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("head after a failed multipart put: %v, want ErrNotFound", err)
		}
		ups, err := s.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(vgwBucket)})
		if err != nil {
			t.Fatal(err)
		}
		if len(ups.Uploads) != 0 {
			t.Fatalf("%d multipart uploads left after a failed put (%T), want 0 (aborted)", len(ups.Uploads), body)
		}
	}
}

// lostAbortTransport fails UploadPart of one part number (as
// partFailTransport) and answers the first AbortMultipartUpload with 204
// without passing it on: an abort the server did not apply, as when a part
// still being written there brings the upload back.
type lostAbortTransport struct {
	partFailTransport
	aborts atomic.Int32 // AbortMultipartUpload requests seen
}

func (f *lostAbortTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodDelete && req.URL.Query().Has("uploadId") && f.aborts.Add(1) == 1 {
		return &http.Response{StatusCode: http.StatusNoContent, Status: "204 No Content", Proto: "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
	}
	return f.partFailTransport.RoundTrip(req)
}

// TestS3MultipartAbortRepeated: a failed multipart put checks that its
// abort took (ListParts) and aborts again when the upload is still there.
func TestS3MultipartAbortRepeated(t *testing.T) {
	endpoint := startVersitygw(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	obj := make([]byte, 11<<20)
	s := newVersitygwStore(t, endpoint, nil)
	tr := &lostAbortTransport{partFailTransport: partFailTransport{next: http.DefaultTransport.(*http.Transport).Clone(), part: "2"}}
	failing := newVersitygwStore(t, endpoint, &http.Client{Transport: tr})
	if err := failing.Put(ctx, "m/lost-abort", bytes.NewReader(obj), int64(len(obj)), PutOptions{}); err == nil ||
		!strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("put with a failing part: %v", err)
	}
	if n := tr.aborts.Load(); n < 2 {
		t.Fatalf("%d abort requests, want a second after the first did not take", n)
	}
	ups, err := s.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(vgwBucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left after a failed put whose first abort was lost, want 0", len(ups.Uploads))
	}
}
