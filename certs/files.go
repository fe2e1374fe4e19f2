// Package certs holds Treaty's TLS material: it loads a certificate, its key and CA bundles from
// PEM files, builds the server and client tls.Configs from them, reloads the files when they
// change on disk without a restart, and writes a development CA (WriteDev).
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCheckInterval is how often, at most, Files looks at its files' modification time, size
// and identity. A look costs one stat per file and happens on a handshake that needs the material.
const DefaultCheckInterval = time.Second

// expiryWarning is how close to its end a certificate gets a warning in the log when it is loaded.
const expiryWarning = 7 * 24 * time.Hour

// An Option adjusts Load.
type Option func(*options)

type options struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time
}

// WithLogger sets where Files reports reloads, failed reloads and certificates close to expiry
// (slog.Default() otherwise). Private key material never reaches it.
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

// WithCheckInterval sets how often, at most, the files are looked at for changes
// (DefaultCheckInterval otherwise); zero looks on every handshake, which tests use.
func WithCheckInterval(d time.Duration) Option { return func(o *options) { o.interval = d } }

// withClock sets the clock (time.Now otherwise); for tests.
func withClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Files holds TLS material loaded from files and reloads it when the files change on disk.
//
// It reloads on demand rather than with a poller: the server config looks at the files when a
// client says hello (GetConfigForClient), the client config when a server asks for a certificate
// (GetClientCertificate), at most once per check interval. There is no goroutine to start or stop,
// an idle process does no work, and a new handshake always sees material at most one interval old.
// A reload that fails (a half-written file, a certificate without its new key) keeps the previous
// material, logs the error once, and is tried again when the files change again.
//
// Files is safe for concurrent use.
type Files struct {
	opts  options
	units []*unit // keypair, client CA, CA; nil entries for files not given

	cur       atomic.Pointer[material]
	checking  sync.Mutex // held by the one handshake that looks at the files; others go on
	lastCheck atomic.Int64
}

// material is one consistent generation of what was loaded; never modified once published.
type material struct {
	cert      *tls.Certificate // nil without --tls-cert
	clientCAs *x509.CertPool   // nil without --client-ca
	roots     *x509.CertPool   // nil without --ca: system roots
	server    *tls.Config      // nil without a certificate
}

// Load reads certFile and keyFile (a server's certificate chain and private key, presented to
// clients and, as a client certificate, to peers), clientCAFile (the CAs that client certificates
// must chain to) and caFile (the CAs a peer's server certificate must chain to; system roots when
// empty). Any of them may be empty, except that the certificate and key come together and a client
// CA needs a certificate to serve with. Errors name the file by its flag: "--tls-cert FILE: ...".
func Load(certFile, keyFile, clientCAFile, caFile string, opt ...Option) (*Files, error) {
	o := options{log: slog.Default(), interval: DefaultCheckInterval, now: time.Now}
	for _, fn := range opt {
		fn(&o)
	}
	switch {
	case (certFile == "") != (keyFile == ""):
		return nil, errors.New("--tls-cert and --tls-key go together: give both or neither")
	case clientCAFile != "" && certFile == "":
		return nil, errors.New("--client-ca verifies clients of a TLS listener: it needs --tls-cert and --tls-key")
	}
	f := &Files{opts: o}
	var m material
	if certFile != "" {
		u := &unit{files: []string{certFile, keyFile}, load: func(m *material) error {
			cert, err := loadKeyPair("--tls-cert", certFile, "--tls-key", keyFile)
			m.cert = cert
			return err
		}}
		f.units = append(f.units, u)
	}
	if clientCAFile != "" {
		f.units = append(f.units, &unit{files: []string{clientCAFile}, load: func(m *material) error {
			pool, err := loadPool("--client-ca", clientCAFile)
			m.clientCAs = pool
			return err
		}})
	}
	if caFile != "" {
		f.units = append(f.units, &unit{files: []string{caFile}, load: func(m *material) error {
			pool, err := loadPool("--ca", caFile)
			m.roots = pool
			return err
		}})
	}
	for _, u := range f.units {
		u.stamps = stat(u.files)
		if err := u.load(&m); err != nil {
			return nil, err
		}
	}
	f.warnExpiry(m.cert, certFile)
	f.publish(m)
	f.lastCheck.Store(o.now().UnixNano())
	return f, nil
}

// ServerConfig returns the configuration for Treaty's TLS listeners (gRPC and HTTP): TLS 1.2 at
// least (1.3 when the client offers it), ALPN h2 and http/1.1, and, with a client CA, client
// certificates verified when given (tls.VerifyClientCertIfGiven: a client may authenticate with a
// token instead). Each handshake uses the files' current material. It returns nil when Load was
// given no certificate: there is no TLS to serve.
func (f *Files) ServerConfig() *tls.Config {
	if f.cur.Load().server == nil {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos(),
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return f.material().server, nil
		},
	}
}

// ClientConfig returns the configuration for dialing peers: it verifies the peer's certificate
// with the CA file (system roots without one) and host name, and presents the certificate, if
// Load was given one, as the client certificate, whenever the server asks (see the package's
// ClientConfig), reloaded like the server's.
//
// The CA bundle is the one current when ClientConfig is called (a changed file is read again
// then); connections made from this config keep it, so a new peer CA takes a new ClientConfig
// (a re-dial) or a restart. Reloading it under a live config would mean skipping Go's verification and
// redoing it in VerifyConnection, where the TLS stack does not say which IP address was dialled
// (ConnectionState.ServerName is empty for IP targets), so the IP SAN check would be lost.
func (f *Files) ClientConfig() *tls.Config {
	m := f.material()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: m.roots}
	if m.cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return f.material().cert, nil
		}
	}
	return cfg
}

// ClientConfig returns a configuration for the CLI, read once: it verifies the server with caFile
// (system roots when empty) and presents certFile/keyFile as the client certificate when given.
// Errors name the files by the CLI's flags (--cert, --key, --ca).
//
// Like Files.ClientConfig it presents the certificate whenever the server asks, even when its CA
// is not among those the server names: Go would otherwise send none, and a caller who gave a
// certificate the server does not trust would be let in without an identity and refused later
// as unauthenticated, instead of failing the handshake with "unknown certificate authority".
func ClientConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("--cert and --key go together: give both or neither")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if certFile != "" {
		cert, err := loadKeyPair("--cert", certFile, "--key", keyFile)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	if caFile != "" {
		pool, err := loadPool("--ca", caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// Name returns the identity name a certificate authenticates as: its first URI SAN (for example
// spiffe://treaty.local/service), else its subject common name; "" for nil.
func Name(cert *x509.Certificate) string {
	switch {
	case cert == nil:
		return ""
	case len(cert.URIs) > 0:
		return cert.URIs[0].String()
	}
	return cert.Subject.CommonName
}

func nextProtos() []string { return []string{"h2", "http/1.1"} }

// material returns the current material, first reloading changed files when the check interval
// has passed. Only one caller looks at the files at a time; the others use what is there.
func (f *Files) material() *material {
	now := f.opts.now().UnixNano()
	if now-f.lastCheck.Load() >= int64(f.opts.interval) && f.checking.TryLock() {
		f.lastCheck.Store(now)
		f.reload()
		f.checking.Unlock()
	}
	return f.cur.Load()
}

// reload loads the units whose files changed; it runs with f.checking held.
func (f *Files) reload() {
	m := *f.cur.Load()
	changed := false
	for _, u := range f.units {
		stamps := stat(u.files)
		if sameStamps(stamps, u.stamps) || sameStamps(stamps, u.failed) {
			continue
		}
		next := m
		if err := u.load(&next); err != nil {
			// Remember the failed files so the error is logged once, not on every handshake;
			// the next change to any of them is tried again.
			u.failed = stamps
			f.opts.log.Error("TLS files changed but could not be loaded; keeping the previous ones", "err", err)
			continue
		}
		f.opts.log.Info("TLS files reloaded", "files", u.files)
		if next.cert != m.cert {
			f.warnExpiry(next.cert, u.files[0])
		}
		u.stamps, u.failed = stamps, nil
		m = next
		changed = true
	}
	if changed {
		f.publish(m)
	}
}

// publish makes m current, building the server config it implies.
func (f *Files) publish(m material) {
	m.server = nil
	if m.cert != nil {
		m.server = &tls.Config{
			MinVersion:   tls.VersionTLS12,
			NextProtos:   nextProtos(),
			Certificates: []tls.Certificate{*m.cert},
		}
		if m.clientCAs != nil {
			m.server.ClientCAs = m.clientCAs
			m.server.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	f.cur.Store(&m)
}

func (f *Files) warnExpiry(cert *tls.Certificate, file string) {
	if cert == nil || cert.Leaf == nil {
		return
	}
	left := cert.Leaf.NotAfter.Sub(f.opts.now())
	switch {
	case left <= 0:
		f.opts.log.Warn("TLS certificate has expired; handshakes will fail", "file", file, "not_after", cert.Leaf.NotAfter)
	case left < expiryWarning:
		f.opts.log.Warn("TLS certificate expires soon", "file", file, "not_after", cert.Leaf.NotAfter)
	}
}

// unit is a group of files loaded together: a certificate with its key, or one CA bundle.
type unit struct {
	files  []string
	load   func(*material) error
	stamps []os.FileInfo // as of the material in use
	failed []os.FileInfo // as of the last failed load, if any
}

// stat returns the files' infos (nil entries for files it cannot stat). It is taken before the
// files are read, so a write racing the read shows up as a change at the next look.
func stat(files []string) []os.FileInfo {
	infos := make([]os.FileInfo, len(files))
	for i, name := range files {
		infos[i], _ = os.Stat(name)
	}
	return infos
}

// sameStamps reports whether every file is the same file (device and inode: a rename over it or
// a swapped symlink, as Kubernetes secret volumes do, is a change) with the same size and
// modification time.
func sameStamps(a, b []os.FileInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] == nil || b[i] == nil {
			if a[i] != b[i] {
				return false
			}
			continue
		}
		if !os.SameFile(a[i], b[i]) || a[i].Size() != b[i].Size() || !a[i].ModTime().Equal(b[i].ModTime()) {
			return false
		}
	}
	return true
}

// loadKeyPair reads a PEM certificate chain and its private key. Errors name the files by their
// flags and never quote the key file's content.
func loadKeyPair(certFlag, certFile, keyFlag, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFlag, err)
	}
	if _, err := parseCerts(certPEM); err != nil {
		return nil, fmt.Errorf("%s %s: %w", certFlag, certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFlag, err)
	}
	if !hasPrivateKey(keyPEM) {
		return nil, fmt.Errorf("%s %s: no PEM private key", keyFlag, keyFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s %s and %s %s: %w", certFlag, certFile, keyFlag, keyFile, err)
	}
	return &cert, nil
}

// loadPool reads a PEM CA bundle; unlike x509.CertPool.AppendCertsFromPEM it refuses a file with
// no certificate or a certificate it cannot parse instead of skipping it.
func loadPool(flag, file string) (*x509.CertPool, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	certs, err := parseCerts(raw)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, file, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// parseCerts parses every CERTIFICATE block in raw, requiring at least one.
func parseCerts(raw []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, raw = pem.Decode(raw)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}

// hasPrivateKey reports whether raw holds a PEM block that is a private key.
func hasPrivateKey(raw []byte) bool {
	for {
		var block *pem.Block
		block, raw = pem.Decode(raw)
		if block == nil {
			return false
		}
		if block.Type == "PRIVATE KEY" || block.Type == "EC PRIVATE KEY" || block.Type == "RSA PRIVATE KEY" {
			return true
		}
	}
}
