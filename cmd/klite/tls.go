package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// certCheckInterval is how often a handshake may look at the certificate
// files for a change: at most one pair of stat calls a second.
const certCheckInterval = time.Second

// tlsServerConfig builds the TLS configuration of SSL listeners from
// -tls-cert, -tls-key and -tls-client-ca. Go's defaults choose the cipher
// suites; TLS 1.2 is the oldest version accepted.
func tlsServerConfig(cfg Config, log zerolog.Logger) (*tls.Config, error) {
	certs, err := newCertReloader(cfg.TLSCert, cfg.TLSKey, log)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: certs.get,
		// Full-size records from the first byte: Kafka responses are bulk
		// data, not a web page racing to first paint.
		DynamicRecordSizingDisabled: true,
	}
	if cfg.TLSClientCA != "" {
		pem, err := os.ReadFile(cfg.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("-tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-tls-client-ca %s: no PEM certificate in it", cfg.TLSClientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// certReloader serves the certificate in -tls-cert/-tls-key and reads the
// files again when either changes (size or modification time), so a
// certificate rotates without a restart. A pair that does not load (for
// example the certificate written but not yet its key) keeps the previous
// one in service and is tried again at the next check.
type certReloader struct {
	certFile, keyFile string
	log               zerolog.Logger

	cert      atomic.Pointer[tls.Certificate]
	nextCheck atomic.Int64 // unix ns

	mu    sync.Mutex // one reload at a time; guards stamp
	stamp [2]fileStamp
}

type fileStamp struct {
	size, modNs int64
}

func newCertReloader(certFile, keyFile string, log zerolog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	stamp, err := r.stamps()
	if err == nil {
		err = r.load(stamp)
	}
	if err != nil {
		return nil, fmt.Errorf("-tls-cert/-tls-key: %w", err)
	}
	return r, nil
}

func (r *certReloader) stamps() ([2]fileStamp, error) {
	var st [2]fileStamp
	for i, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return st, err
		}
		st[i] = fileStamp{fi.Size(), fi.ModTime().UnixNano()}
	}
	return st, nil
}

func (r *certReloader) load(stamp [2]fileStamp) error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	if len(cert.Certificate) == 0 {
		return errors.New("no certificate")
	}
	r.cert.Store(&cert)
	r.stamp = stamp
	leaf := cert.Leaf
	if leaf != nil {
		r.log.Info().Str("file", r.certFile).Str("subject", leaf.Subject.String()).
			Time("not_after", leaf.NotAfter).Msg("TLS certificate loaded")
	}
	return nil
}

// get is tls.Config.GetCertificate. It runs on handshake goroutines.
func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	now := time.Now().UnixNano()
	if next := r.nextCheck.Load(); now >= next && r.nextCheck.CompareAndSwap(next, now+int64(certCheckInterval)) {
		r.reloadIfChanged()
	}
	return r.cert.Load(), nil
}

func (r *certReloader) reloadIfChanged() {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamp, err := r.stamps()
	if err != nil {
		r.log.Warn().Err(err).Msg("TLS certificate files unreadable; keeping the loaded certificate")
		return
	}
	if stamp == r.stamp {
		return
	}
	if err := r.load(stamp); err != nil {
		r.log.Warn().Err(err).Msg("TLS certificate files changed but do not load; keeping the loaded certificate")
	}
}
