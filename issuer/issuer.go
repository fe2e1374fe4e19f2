package issuer

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/token"
)

// Config configures an Issuer.
type Config struct {
	// Store keeps signing keys, the inventory, the replay cache and the outbox (see Schema).
	// Several replicas may share one store kept in etcd (a store.Watcher), with one KEK: each
	// signs with the store's active key whichever replica made it, and they share the replay
	// cache and the inventory.
	Store store.Store
	// Relay publishes the outbox in Store into the revoker's feed. The caller runs it.
	Relay *outbox.Relay
	// Directory looks workloads, integrations and partners up in the registry.
	Directory Directory
	// Authorizer asks the PDP whether issuance is allowed.
	Authorizer Authorizer
	// Feed, if set, is followed so that the moment the active signing key is revoked in the feed,
	// the issuer rotates to a new one. Without it the issuer rotates when the PDP first denies an
	// issuance as key_revoked.
	Feed feed.Source
	// IssuerURL is the issuer identifier: the iss of every token and the aud client assertions
	// must carry.
	IssuerURL string
	// MaxCredentialTTL caps every credential's lifetime; defaults to token.DefaultMaxLifetime.
	MaxCredentialTTL time.Duration
	// SigningAlgorithm is the JWS algorithm of new signing keys: EdDSA (the default), ES256 or
	// RS256. Changing it takes effect at a rotation, which it makes due at once: a key of the new
	// algorithm is published KeyPrepublish ahead of its turn.
	SigningAlgorithm string
	// KeyRotation is how long a signing key signs before the next one takes over; defaults to
	// DefaultKeyRotation. At least a minute, and longer than KeyPrepublish.
	KeyRotation time.Duration
	// KeyPrepublish is how long the next signing key is published (in the feed and the JWKS)
	// before it signs; defaults to DefaultKeyPrepublish.
	KeyPrepublish time.Duration
	// KEKFile is an existing file holding the key-encryption key (KEK) the private signing keys
	// are encrypted with in Store (AES-256-GCM): 32 bytes, raw or in standard base64, readable by
	// its owner only (mode 0600 or stricter), or the issuer refuses to start. The environment
	// variable TREATY_KEK (KEKEnv) may give the KEK instead (setting both is an error). With
	// neither, the issuer keeps the KEK in DataDir/issuer.kek (KEKFileName), generating it on
	// first start. A store opened with another KEK than the one it was written with is refused.
	KEKFile string
	// DataDir is the data folder, where a generated key-encryption key is kept. Without KEKFile,
	// TREATY_KEK or DataDir the private signing keys are stored unencrypted (with a warning).
	DataDir string
	// ClientCAs are the certificate authorities whose client certificates authenticate workloads
	// by tls_client_auth (RFC 8705 section 2.1). Without them only self_signed_tls_client_auth
	// is possible. The TLS listener must request client certificates without verifying them
	// (tls.RequestClientCert or VerifyClientCertIfGiven with these roots), since self-signed
	// certificates chain to nothing; the issuer verifies the chain itself.
	ClientCAs *x509.CertPool
	// DPoPWindow is how far a DPoP proof's iat may lie from the issuer's clock, either way;
	// defaults to DefaultDPoPWindow.
	DPoPWindow time.Duration
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// Logger receives operational and audit logs; defaults to slog.Default().
	Logger *slog.Logger

	kekEnv string // the value of KEKEnv, read once by validate
}

func (c *Config) validate() error {
	switch {
	case c.Store == nil:
		return errors.New("issuer: Config.Store is required")
	case c.Relay == nil:
		return errors.New("issuer: Config.Relay is required")
	case c.Directory == nil:
		return errors.New("issuer: Config.Directory is required")
	case c.Authorizer == nil:
		return errors.New("issuer: Config.Authorizer is required")
	case c.MaxCredentialTTL < 0:
		return errors.New("issuer: Config.MaxCredentialTTL must not be negative")
	case c.KeyRotation < 0 || c.KeyPrepublish < 0:
		return errors.New("issuer: Config.KeyRotation and Config.KeyPrepublish must not be negative")
	}
	if c.SigningAlgorithm == "" {
		c.SigningAlgorithm = DefaultSigningAlgorithm
	}
	if err := checkAlgorithm(c.SigningAlgorithm); err != nil {
		return err
	}
	if c.KeyRotation == 0 {
		c.KeyRotation = DefaultKeyRotation
	}
	if c.KeyPrepublish == 0 {
		c.KeyPrepublish = min(DefaultKeyPrepublish, c.KeyRotation/2)
	}
	if c.KeyRotation < minKeyRotation || c.KeyPrepublish >= c.KeyRotation {
		return fmt.Errorf("issuer: the key rotation period (%s) must be at least %s and longer than the prepublication period (%s)", c.KeyRotation, minKeyRotation, c.KeyPrepublish)
	}
	c.kekEnv = os.Getenv(KEKEnv)
	u, err := url.Parse(c.IssuerURL)
	if c.IssuerURL == "" || err != nil || u.Scheme == "" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("issuer: the issuer URL %q must be an absolute URL without query or fragment, for example https://treaty.example.com", c.IssuerURL)
	}
	if c.MaxCredentialTTL == 0 {
		c.MaxCredentialTTL = token.DefaultMaxLifetime
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.DPoPWindow <= 0 {
		c.DPoPWindow = DefaultDPoPWindow
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Issuer authenticates workloads and mints access tokens.
type Issuer struct {
	cfg Config
	log *slog.Logger

	kek      *kek                   // seals private keys in the store; nil if none is configured
	active   atomic.Pointer[signer] // the key new tokens are signed with
	next     atomic.Pointer[signer] // the key published ahead of its turn, if any
	due      atomic.Int64           // when the key schedule next has a step to take (Unix nanos)
	rotateMu sync.Mutex             // serializes key changes
	applied  appliedFeed            // how far the inventory has applied the feed's revocations (revoked.go)

	// Background work (key publication waits, the key watcher) lives as long as the Issuer.
	ctx    context.Context
	cancel context.CancelFunc
	bgMu   sync.Mutex // guards closed and wg.Add against Close
	closed bool
	wg     sync.WaitGroup
}

// New opens the issuer kept in cfg.Store: it finds the key-encryption key (see Config.KEKFile),
// loads the active signing key, or creates one and queues its publication into the feed in the
// same transaction, and starts the key schedule (see Config.KeyRotation). The key's feed sequence is
// recorded in the background once the relay confirms it; issuance waits for it. Call Close to stop
// the background work.
func New(cfg Config) (*Issuer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	i := &Issuer{cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel}
	if err := i.loadKeys(); err != nil {
		cancel()
		i.wg.Wait()
		return nil, err
	}
	if err := i.tick(); err != nil {
		i.Close()
		return nil, err
	}
	i.background(i.runSchedule)
	if w, ok := cfg.Store.(store.Watcher); ok {
		i.background(func() { i.followStore(w) })
	}
	if cfg.Feed != nil {
		i.background(i.watchKeys)
	}
	return i, nil
}

// background runs fn in a goroutine that Close waits for, unless the issuer is closing.
func (i *Issuer) background(fn func()) {
	i.bgMu.Lock()
	defer i.bgMu.Unlock()
	if i.closed {
		return
	}
	i.wg.Add(1)
	go func() {
		defer i.wg.Done()
		fn()
	}()
}

// Close stops the background work. It does not close the store or the relay.
func (i *Issuer) Close() {
	i.bgMu.Lock()
	i.closed = true
	i.bgMu.Unlock()
	i.cancel()
	i.wg.Wait()
}

// IssuerURL returns the issuer identifier.
func (i *Issuer) IssuerURL() string { return i.cfg.IssuerURL }

// MaxCredentialTTL returns the longest lifetime any credential may have.
func (i *Issuer) MaxCredentialTTL() time.Duration { return i.cfg.MaxCredentialTTL }
