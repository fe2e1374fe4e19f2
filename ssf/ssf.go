// Package ssf is Treaty's OpenID Shared Signals Framework 1.0 transmitter: it follows the revoker's
// feed and publishes its revocations as CAEP 1.0 Security Event Tokens (RFC 8417), signed RS256 as
// the CAEP interoperability profile requires, to receivers that manage their streams through the
// SSF stream configuration API. Delivery is by push (RFC 8935) or poll (RFC 8936).
//
// Durability. The transmitter keeps one cursor in the feed. Each feed event that maps to a SET is
// signed once per stream and queued in the transmitter's own store, in the same transaction that
// advances the cursor, so a crash never loses or duplicates a SET; a SET leaves its stream's queue
// only when the receiver accepted it (push: a 2xx answer) or acknowledged it (poll). Delivery is
// at least once and in feed order per stream; a SET's jti is derived from the stream, the feed's
// epoch and the event's sequence, so a receiver can drop a redelivered SET. See README.md for the
// mapping from feed events to SETs.
//
// HTTP. This package holds the domain: streams, queues, signing, delivery. services/ssfhttp
// serves the transmitter metadata, JWKS, stream management and poll endpoints.
package ssf

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/store"
)

// Delivery method URNs (SSF 1.0 section 6.1).
const (
	MethodPush = "urn:ietf:rfc:8935"
	MethodPoll = "urn:ietf:rfc:8936"
)

// Event type URIs.
const (
	EventCredentialChange = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
	EventSessionRevoked   = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	EventVerification     = "https://schemas.openid.net/secevent/ssf/event-type/verification"
)

// SETType is the typ header of every SET the transmitter signs (SSF 1.0 section 4.1.1).
const SETType = "secevent+jwt"

// SpecVersion is the SSF version the transmitter implements.
const SpecVersion = "1_0"

// Stream statuses (SSF 1.0 section 8.1.2).
const (
	StatusEnabled  = "enabled"
	StatusPaused   = "paused"
	StatusDisabled = "disabled"
)

// EventsSupported lists the event types the transmitter can deliver on a stream. Verification
// events are sent on request whatever a stream's events.
var EventsSupported = []string{EventCredentialChange, EventSessionRevoked}

const (
	bucketStreams = "streams" // stream id -> stored stream (JSON)
	bucketQueue   = "queue"   // stream id + position -> queued SET (JSON)
	bucketJTIs    = "jtis"    // stream id + jti -> position, so acks find their SET
	bucketMeta    = "ssf"     // cursor, signing key
)

var (
	keyCursor = []byte("cursor")
	keyRSA    = []byte("rsa-pkcs8")
)

// Schema is the layout of the transmitter's store.
var Schema = store.Schema{
	Name:    "ssf",
	Version: 1,
	Buckets: []string{bucketStreams, bucketQueue, bucketJTIs, bucketMeta},
}

// Defaults for Config.
const (
	DefaultPollWait      = 15 * time.Second
	DefaultRetryMin      = 500 * time.Millisecond
	DefaultRetryMax      = time.Minute
	DefaultPushTimeout   = 10 * time.Second
	DefaultMaxPollEvents = 100
	// MaxPollEvents bounds maxEvents in a poll request.
	MaxPollEvents = 1000
)

// Config configures a Transmitter.
type Config struct {
	// Issuer is the transmitter's issuer identifier: the iss of every SET and the base URL its
	// HTTP API is served at (the metadata lives at /.well-known/ssf-configuration under it). An
	// absolute https URL (http is accepted for development) without query or fragment. Required.
	Issuer string
	// TokenIssuer is the iss of Treaty's access tokens (the issuer's --issuer-url): credential and
	// workload subjects are named relative to it. Defaults to Issuer.
	TokenIssuer string
	// Source is the revoker's feed. Required.
	Source feed.Source
	// Audience is the aud of every stream's SETs. Empty gives each stream its own audience,
	// "urn:treaty:ssf:stream:" followed by the stream id.
	Audience string
	// HTTPClient posts pushed SETs; defaults to a client with DefaultPushTimeout that does not
	// follow redirects.
	HTTPClient *http.Client
	// PollWait bounds how long a poll request waits for a SET; default DefaultPollWait. Keep it
	// below the HTTP server's write timeout.
	PollWait time.Duration
	// MinVerificationInterval, if set, is the shortest time between two verification requests
	// on a stream (advertised as min_verification_interval, in whole seconds); a request sooner
	// fails with ErrTooFrequent. Zero admits every request.
	MinVerificationInterval time.Duration
	// RetryMin and RetryMax bound the exponential backoff between failed push attempts; defaults
	// DefaultRetryMin and DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// Logger receives operational logs (never SETs' authorization headers); defaults to
	// slog.Default().
	Logger *slog.Logger
}

// Transmitter publishes the feed's revocations to SSF receivers.
type Transmitter struct {
	cfg    Config
	st     store.Store
	log    *slog.Logger
	key    *rsa.PrivateKey
	kid    string
	issuer *url.URL

	// skipped is the highest feed sequence handled, persisted or not; only the follow
	// goroutine touches it.
	skipped     uint64
	skippedMark string // mark of the event at skipped
	// checked tells the last subscription started one event early to compare marks;
	// uncheckedOnce makes the next one start at the cursor (after an OUT_OF_RANGE answer).
	checked, uncheckedOnce bool

	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced when a queue or a stream changes

	verifyMu   sync.Mutex
	lastVerify map[string]time.Time // stream id -> last admitted verification request

	runMu   sync.Mutex
	closed  bool // Close was called: Run returns at once
	running bool
	stop    context.CancelFunc
	done    chan struct{}
}

// Open opens the transmitter kept in st, generating its signing key on first use.
func Open(st store.Store, cfg Config) (*Transmitter, error) {
	if cfg.Source == nil {
		return nil, errors.New("ssf: Config.Source is required")
	}
	iss, err := checkIssuer(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	cfg.Issuer = strings.TrimRight(cfg.Issuer, "/")
	if cfg.TokenIssuer == "" {
		cfg.TokenIssuer = cfg.Issuer
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{
			Timeout: DefaultPushTimeout,
			// A receiver's endpoint is configured, not discovered: never follow it elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = DefaultPollWait
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryMin)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t := &Transmitter{cfg: cfg, st: st, log: cfg.Logger.With("service", "ssf"), issuer: iss, notify: make(chan struct{}),
		lastVerify: map[string]time.Time{}}
	if err := t.loadKey(); err != nil {
		return nil, fmt.Errorf("ssf: signing key: %w", err)
	}
	return t, nil
}

func checkIssuer(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return nil, errors.New("ssf: Config.Issuer is required: the base URL receivers reach the SSF API at, such as https://treaty.example.com")
	case err != nil:
		return nil, fmt.Errorf("ssf: Config.Issuer: %w", err)
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return nil, fmt.Errorf("ssf: Config.Issuer %q must be an absolute https URL", raw)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("ssf: Config.Issuer %q must have no query or fragment", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

// Issuer returns the transmitter's issuer identifier.
func (t *Transmitter) Issuer() string { return t.cfg.Issuer }

// Run follows the feed and delivers SETs until ctx ends or Close is called. It retries the feed
// and receivers on its own; it returns nil when stopped, or an error if it is already running.
func (t *Transmitter) Run(ctx context.Context) error {
	t.runMu.Lock()
	if t.closed {
		t.runMu.Unlock()
		return nil
	}
	if t.running {
		t.runMu.Unlock()
		return errors.New("ssf: Run is already running")
	}
	ctx, cancel := context.WithCancel(ctx)
	t.running, t.stop, t.done = true, cancel, make(chan struct{})
	done := t.done
	t.runMu.Unlock()
	defer func() {
		cancel()
		close(done)
		t.runMu.Lock()
		t.running = false
		t.runMu.Unlock()
	}()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); t.follow(ctx) }()
	go func() { defer wg.Done(); t.superviseDelivery(ctx) }()
	wg.Wait()
	return nil
}

// Close stops Run and waits for it to return; a Run called after Close returns at once. The
// caller closes the store afterwards.
func (t *Transmitter) Close() error {
	t.runMu.Lock()
	t.closed = true
	stop, done, running := t.stop, t.done, t.running
	t.runMu.Unlock()
	if running {
		stop()
		<-done
	}
	return nil
}

// changed returns a channel closed at the next change to a queue or a stream. Take it before
// reading, so no change between the read and the wait is missed.
func (t *Transmitter) changed() <-chan struct{} {
	t.notifyMu.Lock()
	defer t.notifyMu.Unlock()
	return t.notify
}

func (t *Transmitter) wake() {
	t.notifyMu.Lock()
	close(t.notify)
	t.notify = make(chan struct{})
	t.notifyMu.Unlock()
}

// sleep waits for d or the end of ctx, reporting whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
