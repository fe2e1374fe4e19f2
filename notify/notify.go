// Package notify tells the people responsible for a partner what happened to it, by webhook:
// contract ends approaching, kill-switch events on the partner, offboarding progress and new
// high-severity posture findings. It knows nothing of gRPC; services/notifysvc serves its
// delivery log.
//
// Durability. A notification and one delivery per configured endpoint are written in one
// fsync'd transaction before Enqueue returns; the sources (the feed, the audit trail) move their
// position in the same transaction as the notifications they produce, so a crash never loses or
// doubles one. Contract warnings and findings are deduplicated by key in the store: once per
// partner per contract end, once per finding id.
//
// Delivery. Each endpoint has one worker that POSTs the notification's JSON, signed with
// HMAC-SHA256 over "timestamp.body" (header Treaty-Signature: t=...,v1=...; see Sign and Verify),
// and carrying a delivery id (header Treaty-Delivery) that stays the same across retries, so a
// receiver can drop a redelivery. A 2xx answer delivers it; anything else is retried with
// exponential backoff and jitter, up to MaxAttempts, after which the delivery is dead. Every
// attempt is kept in the delivery log (time, status code, error, duration), never the secret,
// the body or the endpoint's path and query (which often carry a token). Delivery is at least
// once and not ordered between notifications.
package notify

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/store"
)

const (
	bucketNotifications = "notifications" // big-endian sequence -> notificationRecord
	// bucketDeliveries holds every delivery under inverted notification sequence + endpoint key,
	// so a forward scan lists the newest first.
	bucketDeliveries = "deliveries"
	// bucketDue indexes pending deliveries by endpoint key + next attempt (unix nanoseconds) +
	// notification sequence, valued with the delivery key, so each endpoint's worker finds its
	// next due delivery with one seek.
	bucketDue    = "due"
	bucketDedupe = "dedupe" // dedupe key -> notification sequence + unix nanoseconds raised
	bucketMeta   = "notify" // counters and the sources' positions
)

var (
	keyNextSeq     = []byte("next_sequence")
	keyFeedCursor  = []byte("feed_cursor")
	keyAuditCursor = []byte("audit_cursor")
)

// Schema is the layout of the notifier's store: its own bbolt file (notify.db), not buckets in
// the registry's, so the registry's schema and backups stay its own and the notifier can be
// started, stopped or wiped without touching the inventory.
var Schema = store.Schema{
	Name:    "notify",
	Version: 1,
	Buckets: []string{bucketNotifications, bucketDeliveries, bucketDue, bucketDedupe, bucketMeta},
}

// Defaults for Config fields left zero.
const (
	DefaultContractWarning       = 30 * 24 * time.Hour
	DefaultContractCheckInterval = time.Hour
	DefaultAuditPollInterval     = 2 * time.Second
	DefaultMaxAttempts           = 8
	DefaultRetryMin              = 5 * time.Second
	DefaultRetryMax              = 30 * time.Minute
	DefaultAttemptTimeout        = 10 * time.Second
	DefaultRetention             = 30 * 24 * time.Hour
)

// Directory is what the notifier reads from the registry: partners (for recipients and contract
// ends), the integration or workload a block names (to find its partner), and the audit trail
// (offboarding progress). *registry.Registry implements it.
type Directory interface {
	GetPartner(ctx context.Context, id string) (registry.Partner, error)
	ListPartners(ctx context.Context, pageSize int, pageToken string) ([]registry.Partner, string, error)
	GetIntegration(ctx context.Context, id string) (registry.Integration, error)
	GetWorkload(ctx context.Context, id string) (registry.Workload, error)
	ListAudit(ctx context.Context, after uint64, limit int) ([]registry.AuditRecord, error)
}

var _ Directory = (*registry.Registry)(nil)

// Config configures a Notifier.
type Config struct {
	// Store keeps the queue, the delivery log and the sources' positions; open it with Schema.
	Store store.Store
	// Endpoints are the webhook URLs every notification is POSTed to (http or https).
	Endpoints []string
	// Secret is the HMAC-SHA256 key deliveries are signed with (see ReadSecret). Required when
	// Endpoints are given.
	Secret []byte
	// Directory is the registry. Required.
	Directory Directory
	// Feed, if set, is the revoker's feed, followed for kill-switch events.
	Feed feed.Source
	// ContractWarning is how long before a partner's contract end its people are told; default
	// DefaultContractWarning.
	ContractWarning time.Duration
	// ContractCheckInterval is how often partners' contract ends are looked at; default
	// DefaultContractCheckInterval.
	ContractCheckInterval time.Duration
	// AuditPollInterval is how often the audit trail is read for offboarding progress; default
	// DefaultAuditPollInterval.
	AuditPollInterval time.Duration
	// MaxAttempts is how many times a delivery is tried before it is dead; default
	// DefaultMaxAttempts.
	MaxAttempts int
	// RetryMin and RetryMax bound the exponential backoff between attempts (jittered); defaults
	// DefaultRetryMin and DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// Retention is how long settled notifications stay in the delivery log; default
	// DefaultRetention.
	Retention time.Duration
	// HTTPClient posts deliveries; defaults to a client with DefaultAttemptTimeout that does not
	// follow redirects.
	HTTPClient *http.Client
	// Now returns the current time for contract windows and notification times; defaults to
	// time.Now. Retries are scheduled on the real clock.
	Now func() time.Time
	// Logger receives operational logs (never bodies, secrets or endpoint paths); defaults to
	// slog.Default().
	Logger *slog.Logger
}

// endpoint is one configured webhook.
type endpoint struct {
	url      string
	key      [8]byte // first bytes of the URL's SHA-256: stable across restarts and reorderings
	redacted string  // what logs and the delivery log show
}

// Notifier queues notifications durably and delivers them to webhooks.
type Notifier struct {
	cfg       Config
	st        store.Store
	log       *slog.Logger
	endpoints []endpoint

	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced when a delivery is queued

	runMu   sync.Mutex
	running bool
}

// Open checks cfg and returns a Notifier over cfg.Store. Deliveries queued for endpoints no
// longer configured are marked dead, so an endpoint removed from the configuration is not
// called again. The audit trail's position is set to its end on first use: history is not news.
func Open(ctx context.Context, cfg Config) (*Notifier, error) {
	if cfg.Store == nil {
		return nil, errors.New("notify: Config.Store is required")
	}
	if cfg.Directory == nil {
		return nil, errors.New("notify: Config.Directory is required")
	}
	if len(cfg.Endpoints) > 0 && len(cfg.Secret) < MinSecretBytes {
		return nil, fmt.Errorf("notify: webhooks need a signing secret of at least %d bytes", MinSecretBytes)
	}
	if cfg.ContractWarning < 0 || cfg.ContractCheckInterval < 0 || cfg.AuditPollInterval < 0 || cfg.MaxAttempts < 0 ||
		cfg.RetryMin < 0 || cfg.RetryMax < 0 || cfg.Retention < 0 {
		return nil, errors.New("notify: durations and MaxAttempts must not be negative")
	}
	if cfg.ContractWarning == 0 {
		cfg.ContractWarning = DefaultContractWarning
	}
	if cfg.ContractCheckInterval == 0 {
		cfg.ContractCheckInterval = DefaultContractCheckInterval
	}
	if cfg.AuditPollInterval == 0 {
		cfg.AuditPollInterval = DefaultAuditPollInterval
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryMin)
	}
	if cfg.RetryMax < cfg.RetryMin {
		return nil, fmt.Errorf("notify: RetryMax %s is below RetryMin %s", cfg.RetryMax, cfg.RetryMin)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{
			Timeout: DefaultAttemptTimeout,
			// An endpoint is configured, not discovered: never follow it elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	n := &Notifier{cfg: cfg, st: cfg.Store, log: cfg.Logger.With("service", "notify"), notify: make(chan struct{})}
	seen := map[[8]byte]bool{}
	for _, raw := range cfg.Endpoints {
		ep, err := parseEndpoint(raw)
		if err != nil {
			return nil, err
		}
		if !seen[ep.key] {
			seen[ep.key] = true
			n.endpoints = append(n.endpoints, ep)
		}
	}
	if err := n.dropOrphans(); err != nil {
		return nil, err
	}
	if err := n.startAudit(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// parseEndpoint checks a webhook URL. Errors name the endpoint only by scheme and host.
func parseEndpoint(raw string) (endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return endpoint{}, errors.New("notify: a webhook URL does not parse")
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return endpoint{}, fmt.Errorf("notify: webhook URL %s must be an absolute http(s) URL", Redact(raw))
	}
	sum := sha256.Sum256([]byte(raw))
	ep := endpoint{url: raw, redacted: Redact(raw)}
	copy(ep.key[:], sum[:8])
	return ep, nil
}

// Redact returns a webhook URL as logs and the delivery log show it: scheme and host, with the
// path, query and user information (which often carry a token) replaced by "/...".
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	out := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		out += "/..."
	}
	return out
}

// Run delivers queued notifications, runs the sources (contract warnings, the feed when
// configured, the audit trail) and prunes the delivery log until ctx ends. Run it once: go n.Run(ctx).
func (n *Notifier) Run(ctx context.Context) error {
	n.runMu.Lock()
	if n.running {
		n.runMu.Unlock()
		return errors.New("notify: Run is already running")
	}
	n.running = true
	n.runMu.Unlock()
	defer func() {
		n.runMu.Lock()
		n.running = false
		n.runMu.Unlock()
	}()
	var wg sync.WaitGroup
	run := func(fn func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); fn(ctx) }()
	}
	for _, ep := range n.endpoints {
		run(func(ctx context.Context) { n.deliverLoop(ctx, ep) })
	}
	run(n.contractLoop)
	run(n.auditLoop)
	run(n.pruneLoop)
	if n.cfg.Feed != nil {
		run(n.followFeed)
	}
	wg.Wait()
	return nil
}

// changed returns a channel closed when the next delivery is queued. Take it before reading, so
// nothing queued between the read and the wait is missed.
func (n *Notifier) changed() <-chan struct{} {
	n.notifyMu.Lock()
	defer n.notifyMu.Unlock()
	return n.notify
}

func (n *Notifier) wake() {
	n.notifyMu.Lock()
	close(n.notify)
	n.notify = make(chan struct{})
	n.notifyMu.Unlock()
}

func (n *Notifier) now() time.Time { return n.cfg.Now().UTC().Round(0) }

// sleep waits for d or the end of ctx, reporting whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
