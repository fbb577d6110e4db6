// Package s3store is the tier's object store on S3 (or anything speaking
// its API: versitygw, MinIO, ...), built on aws-sdk-go-v2. It is its own
// package so that only the programs that talk to S3 (cmd/klite, the bench,
// tests) link the SDK; storage, group, kafka and tier do not.
package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/klite/klite/tier/objstore"
)

// Defaults for Config; each is overridable.
const (
	defaultS3MaxAttempts    = 8
	defaultS3MaxBackoff     = 10 * time.Second
	defaultMultipartBytes   = 64 << 20
	defaultPartBytes        = 16 << 20
	defaultPartConcurrency  = 4
	defaultS3Region         = "us-east-1"
	minMultipartPartBytes   = 5 << 20 // S3's minimum part (all but the last)
	maxMultipartParts       = 10000   // S3's maximum parts per upload
	multipartAbortTimeout   = 30 * time.Second
	defaultS3ListPageLength = 1000
)

// Config configures a Store. Zero fields take the defaults above.
type Config struct {
	Bucket string
	// Prefix is prepended to every key (e.g. "klite/"); Keys seen by callers
	// are relative to it.
	Prefix string
	// Endpoint, when set, is a custom S3 URL (versitygw, MinIO, ...); it
	// implies path-style addressing unless VirtualHost is set.
	Endpoint    string
	VirtualHost bool
	Region      string
	// AccessKey/SecretKey select static credentials; empty means the
	// standard AWS chain (env, shared config, web identity, IMDS).
	AccessKey, SecretKey string
	// MaxAttempts and MaxBackoff configure the SDK's standard retryer
	// (exponential backoff with jitter) for every request.
	MaxAttempts int
	MaxBackoff  time.Duration
	// Objects of at least MultipartBytes go up as multipart uploads of
	// PartBytes parts, PartConcurrency at a time.
	MultipartBytes  int64
	PartBytes       int64
	PartConcurrency int
	// HTTPClient overrides the SDK's default client (tests). Set on the S3
	// client rather than the shared config, so an AWS_CA_BUNDLE in the
	// environment does not require a buildable client.
	HTTPClient *http.Client
}

func (c *Config) setDefaults() {
	if c.Region == "" {
		c.Region = defaultS3Region
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = defaultS3MaxAttempts
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = defaultS3MaxBackoff
	}
	if c.PartBytes < minMultipartPartBytes {
		c.PartBytes = defaultPartBytes
	}
	if c.MultipartBytes <= 0 {
		c.MultipartBytes = defaultMultipartBytes
	}
	if c.PartConcurrency <= 0 {
		c.PartConcurrency = defaultPartConcurrency
	}
}

// Store is an objstore.Store on S3.
type Store struct {
	cfg    Config
	client *s3.Client
}

var _ objstore.Store = (*Store)(nil)

// New builds a client. It does not contact the bucket.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3store: S3 bucket required")
	}
	cfg.setDefaults()
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(cfg.Region),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.MaxAttempts
				o.MaxBackoff = cfg.MaxBackoff
				// The default token bucket gives up on retries after a burst
				// of failures; the broker would rather keep backing off.
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3store: load AWS config: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.HTTPClient != nil {
			o.HTTPClient = cfg.HTTPClient
		}
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.UsePathStyle = !cfg.VirtualHost
		}
		// Checksums only when the operation requires them: third-party
		// servers vary in their support of the newer flexible checksums.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &Store{cfg: cfg, client: client}, nil
}

func (s *Store) key(k string) *string { return aws.String(s.cfg.Prefix + k) }

func (s *Store) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts objstore.PutOptions) error {
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return err
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.cfg.Bucket),
		Key:           s.key(key),
		Body:          body,
		ContentLength: aws.Int64(size),
	}
	if opts.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	// An object of one part goes up whole, as the SDK's upload manager
	// did (its first part read hit the end of the body).
	if size >= s.cfg.MultipartBytes && size > s.cfg.PartBytes && !opts.IfNoneMatch {
		return s.mapErr("put", key, s.putMultipart(ctx, key, body, size))
	}
	_, err := s.client.PutObject(ctx, in)
	return s.mapErr("put", key, err)
}

// putMultipart uploads body as a multipart upload of PartBytes parts (more
// when the object would need over S3's 10,000), PartConcurrency at a time;
// each part request retries on its own. Parts are read through io.ReaderAt
// when the body has it (no buffering), else read in turn into memory. On
// any failure the upload is aborted, so S3 keeps no orphaned parts.
func (s *Store) putMultipart(ctx context.Context, key string, body io.ReadSeeker, size int64) error {
	partBytes := max(s.cfg.PartBytes, (size+maxMultipartParts-1)/maxMultipartParts)
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(s.cfg.Bucket), Key: s.key(key)})
	if err != nil {
		return err
	}
	nparts := int((size + partBytes - 1) / partBytes)
	parts := make([]types.CompletedPart, nparts)
	// A failed part stops new ones but does not cancel those in flight:
	// a part the server is still storing when the abort lands could
	// outlive it (S3 says an abort may then have to be repeated).
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		failed   = make(chan struct{})
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; close(failed) })
	}
	sem := make(chan struct{}, s.cfg.PartConcurrency)
	ra, _ := body.(io.ReaderAt)
parts:
	for i := range nparts {
		off := int64(i) * partBytes
		n := min(partBytes, size-off)
		var part io.ReadSeeker
		if ra != nil {
			part = io.NewSectionReader(ra, off, n)
		} else {
			buf := make([]byte, n)
			if _, err := io.ReadFull(body, buf); err != nil {
				fail(err)
				break
			}
			part = bytes.NewReader(buf)
		}
		select {
		case sem <- struct{}{}:
		case <-failed:
			break parts
		case <-ctx.Done():
			fail(ctx.Err())
			break parts
		}
		select {
		case <-failed:
			break parts
		default:
		}
		wg.Add(1)
		go func(i int, part io.ReadSeeker, n int64) {
			defer func() { <-sem; wg.Done() }()
			out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket: aws.String(s.cfg.Bucket), Key: s.key(key), UploadId: created.UploadId,
				PartNumber: aws.Int32(int32(i + 1)), Body: part, ContentLength: aws.Int64(n)})
			if err != nil {
				fail(err)
				return
			}
			parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))}
		}(i, part, n)
	}
	wg.Wait()
	if firstErr == nil {
		_, firstErr = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket: aws.String(s.cfg.Bucket), Key: s.key(key), UploadId: created.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
		if firstErr == nil {
			return nil
		}
	}
	// Abort with a context of its own: the caller's may be what ended the
	// upload.
	actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), multipartAbortTimeout)
	defer acancel()
	if _, err := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(s.cfg.Bucket), Key: s.key(key), UploadId: created.UploadId}); err != nil {
		return fmt.Errorf("%w (abort failed: %v)", firstErr, err)
	}
	return firstErr
}

func (s *Store) GetRange(ctx context.Context, key string, off int64, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    s.key(key),
		Range:  aws.String("bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+int64(len(p))-1, 10)),
	})
	if err != nil {
		return s.mapErr("get", key, err)
	}
	defer out.Body.Close()
	// A server that ignores Range (or a short object) must not be taken
	// for the requested bytes.
	if out.ContentLength != nil && *out.ContentLength != int64(len(p)) {
		return fmt.Errorf("s3store: get %s [%d,+%d): server sent %d bytes: %w", key, off, len(p), *out.ContentLength, objstore.ErrRange)
	}
	if _, err := io.ReadFull(out.Body, p); err != nil {
		return fmt.Errorf("s3store: get %s: %w", key, err)
	}
	return nil
}

func (s *Store) Head(ctx context.Context, key string) (objstore.Info, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: s.key(key)})
	if err != nil {
		return objstore.Info{}, s.mapErr("head", key, err)
	}
	return objstore.Info{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag), Modified: aws.ToTime(out.LastModified)}, nil
}

func (s *Store) List(ctx context.Context, prefix, startAfter string, fn func(objstore.Info) error) error {
	in := &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.cfg.Bucket),
		Prefix:  s.key(prefix),
		MaxKeys: aws.Int32(defaultS3ListPageLength),
	}
	if startAfter != "" {
		in.StartAfter = s.key(startAfter)
	}
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.mapErr("list", prefix, err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if len(k) < len(s.cfg.Prefix) {
				continue
			}
			info := objstore.Info{Key: k[len(s.cfg.Prefix):], Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag), Modified: aws.ToTime(o.LastModified)}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: s.key(key)})
	err = s.mapErr("delete", key, err)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil
	}
	return err
}

// mapErr turns S3 errors into objstore's sentinels.
func (s *Store) mapErr(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return fmt.Errorf("s3store: %s %s: %w", op, key, objstore.ErrNotFound)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("s3store: %s %s: %w", op, key, objstore.ErrNotFound)
		case "PreconditionFailed", "ConditionalRequestConflict":
			return fmt.Errorf("s3store: %s %s: %w", op, key, objstore.ErrExists)
		case "InvalidRange":
			return fmt.Errorf("s3store: %s %s: %w", op, key, objstore.ErrRange)
		}
	}
	return fmt.Errorf("s3store: %s %s: %w", op, key, err)
}
