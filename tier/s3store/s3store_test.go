package s3store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/klite/klite/tier/objstore"
	"github.com/klite/klite/tier/s3test"
)

// These tests run against versitygw (a real S3 server) on loopback, as
// tier's do; the object-store contract itself is tested in tier
// (TestS3StoreVersitygw). KLITE_S3_TESTS=0 skips them, saying so.
const testBucket = "klite-test"

// startVersitygw runs a fresh versitygw with an empty bucket and returns
// its endpoint; it is stopped (its log printed on failure) at cleanup.
func startVersitygw(t *testing.T) string { return s3test.StartT(t, testBucket) }

func newTestStore(t *testing.T, endpoint string, rt http.RoundTripper) *Store {
	t.Helper()
	var hc *http.Client
	if rt != nil {
		hc = &http.Client{Transport: rt}
	}
	s, err := New(context.Background(), Config{
		Bucket: testBucket, Prefix: "klite/", Endpoint: endpoint,
		AccessKey: s3test.Access, SecretKey: s3test.Secret,
		MultipartBytes: 6 << 20, PartBytes: 5 << 20, PartConcurrency: 3,
		MaxAttempts: 6, MaxBackoff: 50 * time.Millisecond, HTTPClient: hc,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// failTransport answers the requests fail selects with an S3 error before
// they reach the server, and passes the rest on.
type failTransport struct {
	next   http.RoundTripper
	fail   func(*http.Request) bool
	status int
	code   string
	calls  atomic.Int64
}

func (f *failTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	f.calls.Add(1)
	if !f.fail(req) {
		return f.next.RoundTrip(req)
	}
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>` + f.code + `</Code><Message>injected</Message></Error>`
	return &http.Response{StatusCode: f.status, Status: http.StatusText(f.status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: req}, nil
}

func transport() http.RoundTripper { return http.DefaultTransport.(*http.Transport).Clone() }

// TestRetriesExhausted: when every attempt fails the store returns the
// error after exactly MaxAttempts requests, not before and not forever.
func TestRetriesExhausted(t *testing.T) {
	endpoint := startVersitygw(t)
	ft := &failTransport{next: transport(), fail: func(*http.Request) bool { return true }, status: 503, code: "SlowDown"}
	store := newTestStore(t, endpoint, ft) // MaxAttempts 6
	err := store.Put(context.Background(), "x", bytes.NewReader([]byte("y")), 1, objstore.PutOptions{})
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

// TestMultipart: a multipart put from a body without io.ReaderAt reads
// back byte for byte; a multipart put whose second part fails (403, not
// retried) returns the error and aborts the upload, leaving neither the
// object nor its parts.
func TestMultipart(t *testing.T) {
	endpoint := startVersitygw(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(7, 8))
	obj := make([]byte, 11<<20) // parts of 5, 5 and 1 MiB
	for i := range obj {
		obj[i] = byte(rng.Uint32())
	}
	s := newTestStore(t, endpoint, nil)
	if err := s.Put(ctx, "m/seq", onlyReadSeeker{bytes.NewReader(obj)}, int64(len(obj)), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(obj))
	if err := s.GetRange(ctx, "m/seq", 0, got); err != nil || !bytes.Equal(got, obj) {
		t.Fatalf("read back: equal %v, %v", bytes.Equal(got, obj), err)
	}
	if info, err := s.Head(ctx, "m/seq"); err != nil || !strings.HasSuffix(strings.Trim(info.ETag, `"`), "-3") {
		t.Fatalf("not a 3-part multipart object: %+v %v", info, err)
	}

	// Over MultipartBytes but within one part: one PutObject, as the SDK's
	// upload manager did (a multipart object's ETag ends in -<parts>).
	small, err := New(ctx, Config{Bucket: testBucket, Endpoint: endpoint, AccessKey: s3test.Access, SecretKey: s3test.Secret,
		MultipartBytes: 1 << 20, PartBytes: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := small.Put(ctx, "m/one", bytes.NewReader(obj[:3<<20]), 3<<20, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if info, err := small.Head(ctx, "m/one"); err != nil || strings.Contains(info.ETag, "-") {
		t.Fatalf("one-part object went up as multipart: %+v %v", info, err)
	}

	part2 := func(req *http.Request) bool {
		return req.Method == http.MethodPut && req.URL.Query().Get("partNumber") == "2"
	}
	for _, body := range []io.ReadSeeker{bytes.NewReader(obj), onlyReadSeeker{bytes.NewReader(obj)}} {
		failing := newTestStore(t, endpoint, &failTransport{next: transport(), fail: part2, status: 403, code: "AccessDenied"})
		err := failing.Put(ctx, "m/fail", body, int64(len(obj)), objstore.PutOptions{})
		if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
			t.Fatalf("put with a failing part (%T): %v", body, err)
		}
		if _, err := s.Head(ctx, "m/fail"); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("head after a failed multipart put: %v, want ErrNotFound", err)
		}
		ups, err := s.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(testBucket)})
		if err != nil {
			t.Fatal(err)
		}
		if len(ups.Uploads) != 0 {
			t.Fatalf("%d multipart uploads left after a failed put (%T), want 0 (aborted)", len(ups.Uploads), body)
		}
	}
}
