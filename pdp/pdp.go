package pdp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/store"
)

// Schema is the layout of the PDP's store: a cache of the enforcement state, which the PDP can
// always rebuild from the feed (delete the file and it replays or resyncs).
var Schema = store.Schema{Name: "pdp", Version: 1, Buckets: feed.Buckets}

// Defaults for Config.
const (
	DefaultStalenessBound = 5 * time.Second
	DefaultMaxWait        = 5 * time.Second
)

// Config configures a PDP.
type Config struct {
	// Store caches the enforcement state across restarts (opened with Schema). Required.
	Store store.Store
	// Source is the feed the PDP follows. Required.
	Source feed.Source
	// StalenessBound is how long the PDP may go without being caught up with the feed before it
	// denies everything as stale; default 5 s. The revoker sends a heartbeat every second, so a
	// healthy follower is never near it.
	StalenessBound time.Duration
	// MaxWait is the longest a decision waits for its min_sequence to be applied (further bounded
	// by the caller's deadline); default 5 s.
	MaxWait time.Duration
	// Now returns the current time, for token and contract validity; defaults to time.Now.
	// Staleness is measured on the monotonic clock, never with Now.
	Now func() time.Time
	// Logger receives operational logs (never tokens); defaults to slog.Default().
	Logger *slog.Logger
	// Recorder, if set, receives every Check decision for the decision log.
	Recorder Recorder
	// TokenCacheSize bounds the verified-token cache, in tokens; zero means
	// DefaultTokenCacheSize, negative turns the cache off (every check verifies the signature).
	TokenCacheSize int
	// Environment, if set, is the environment this PDP serves (for example "production"): it
	// denies credentials of an integration of another environment (environment_mismatch),
	// whatever the request context says, and refuses issuance for one. Unset, the request
	// context's environment is compared instead, when the enforcement point sends one.
	Environment string
}

// Status is where the PDP stands with respect to the feed.
type Status int32

// The statuses, in the order a starting PDP goes through them.
const (
	// StatusSyncing: started or reconnected, and not yet caught up with the announced head.
	StatusSyncing Status = iota
	// StatusReady: caught up within the staleness bound; decisions are made on the state.
	StatusReady
	// StatusStale: not caught up for longer than the staleness bound, or resyncing after the feed
	// was replaced.
	StatusStale
)

// String returns the status's name, as logged.
func (s Status) String() string {
	switch s {
	case StatusSyncing:
		return "syncing"
	case StatusReady:
		return "ready"
	case StatusStale:
		return "stale"
	}
	return fmt.Sprintf("Status(%d)", int32(s))
}

// PDP is the policy decision point. Decisions read one immutable feed.State through an atomic
// pointer and the sync status through an atomic integer: no lock and no store access on the
// decision path. Run follows the feed and swaps in each new state. A PDP is safe for concurrent
// use.
type PDP struct {
	cfg   Config
	log   *slog.Logger
	start time.Time // origin of the monotonic clock readings below

	state   atomic.Pointer[feed.State]
	swapped atomic.Pointer[chan struct{}] // closed (and replaced) at every swap of state

	status     atomic.Int32
	synced     atomic.Bool  // applied at least the head announced by the current stream's last heartbeat
	resyncing  atomic.Bool  // the feed was replaced and the snapshot is not in yet: deny as stale
	caughtUpAt atomic.Int64 // monotonic nanoseconds since start when last caught up (or Run started)
	head       atomic.Uint64

	statusMu      sync.Mutex // serializes status changes and their notification (never on the decision path)
	statusChanged chan struct{}

	running  atomic.Bool
	ids      idSource
	tokens   *tokenCache // nil when turned off
	policies policyStats // policy.go
	stats    stats       // stats.go
}

// New loads the cached state from cfg.Store and returns a PDP that reports syncing until Run has
// caught it up with the feed.
func New(cfg Config) (*PDP, error) {
	if cfg.Store == nil || cfg.Source == nil {
		return nil, errors.New("pdp: Config.Store and Config.Source are required")
	}
	if cfg.StalenessBound <= 0 {
		cfg.StalenessBound = DefaultStalenessBound
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TokenCacheSize == 0 {
		cfg.TokenCacheSize = DefaultTokenCacheSize
	}
	var s *feed.State
	if err := cfg.Store.View(func(tx store.Tx) (err error) { s, err = feed.Load(tx); return err }); err != nil {
		return nil, fmt.Errorf("pdp: load cached state: %w", err)
	}
	p := &PDP{cfg: cfg, log: cfg.Logger.With("component", "pdp"), start: time.Now(), statusChanged: make(chan struct{})}
	p.ids.init()
	p.stats.checks, p.stats.issuances = newCounters(), newCounters()
	p.tokens = newTokenCache(cfg.TokenCacheSize)
	p.state.Store(s)
	ch := make(chan struct{})
	p.swapped.Store(&ch)
	p.status.Store(int32(StatusSyncing))
	return p, nil
}

// Applied returns the last feed sequence applied to the state decisions are made on.
func (p *PDP) Applied() uint64 { return p.state.Load().Sequence() }

// Head returns the feed head announced by the latest heartbeat, or zero before the first.
func (p *PDP) Head() uint64 { return p.head.Load() }

// Status returns the current sync status.
func (p *PDP) Status() Status { return Status(p.status.Load()) }

// Ready reports whether the PDP is caught up with the feed and not stale: whether it makes
// decisions on its state rather than denying them all. Health checks report it.
func (p *PDP) Ready() bool { return p.Status() == StatusReady }

// StatusChanged returns a channel that is closed at the next change of Status. Take it before
// reading Status, so that no change between the read and the wait is missed.
func (p *PDP) StatusChanged() <-chan struct{} {
	p.statusMu.Lock()
	defer p.statusMu.Unlock()
	return p.statusChanged
}

// WaitReady blocks until the PDP is ready or ctx ends.
func (p *PDP) WaitReady(ctx context.Context) error {
	for {
		ch := p.StatusChanged()
		if p.Ready() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// monotonic returns nanoseconds since the PDP was created, on the monotonic clock.
func (p *PDP) monotonic() int64 { return int64(time.Since(p.start)) }

// caughtUp records that the PDP has applied the announced head (the state is in place), now.
func (p *PDP) caughtUp() {
	p.caughtUpAt.Store(p.monotonic())
	p.synced.Store(true)
	p.refreshStatus()
}

// refreshStatus recomputes the status from the follower's facts and the clock, and notifies
// watchers of a change. The follower calls it at each change it makes; the watchdog calls it
// periodically, so that a PDP whose stream went silent turns stale on time.
func (p *PDP) refreshStatus() {
	// Compute under the lock: a watchdog reading the facts just before the follower changes them
	// must not overwrite the follower's newer verdict.
	p.statusMu.Lock()
	defer p.statusMu.Unlock()
	next := StatusSyncing
	switch {
	case p.resyncing.Load():
		next = StatusStale
	case time.Duration(p.monotonic()-p.caughtUpAt.Load()) > p.cfg.StalenessBound:
		// caughtUpAt starts when Run does: a PDP that never catches up turns stale after the
		// bound too.
		next = StatusStale
	case p.synced.Load():
		next = StatusReady
	}
	prev := Status(p.status.Swap(int32(next)))
	if prev == next {
		return
	}
	close(p.statusChanged)
	p.statusChanged = make(chan struct{})
	p.log.Info("pdp status changed", "from", prev.String(), "to", next.String(), "applied", p.Applied(), "head", p.Head())
}

// swap makes s the state decisions are made on and wakes every decision waiting for a sequence.
func (p *PDP) swap(s *feed.State) {
	p.state.Store(s)
	p.wake()
}

// wake wakes every decision waiting for a sequence. It must follow the store of the state: a
// waiter takes the channel before reading the state, so it either sees the new state or holds the
// channel closed here.
func (p *PDP) wake() {
	next := make(chan struct{})
	close(*p.swapped.Swap(&next))
}

// stateAt returns the current state once it has applied minSeq, waiting at most MaxWait (and no
// longer than ctx allows). The common case, a sequence applied already, takes one atomic load.
func (p *PDP) stateAt(ctx context.Context, minSeq uint64) (*feed.State, error) {
	if s := p.state.Load(); s.Sequence() >= minSeq {
		return s, nil
	}
	timer := time.NewTimer(p.cfg.MaxWait)
	defer timer.Stop()
	for {
		ch := *p.swapped.Load()
		s := p.state.Load()
		if s.Sequence() >= minSeq {
			return s, nil
		}
		var cause error
		select {
		case <-ch:
			continue
		case <-timer.C:
		case <-ctx.Done():
			cause = ctx.Err()
		}
		applied, head := p.Applied(), p.Head()
		if minSeq > head {
			return nil, fail.Unavailablef(cause, "min_sequence %d was not applied in time: this decision point has applied "+
				"sequence %d and the feed's head at its last heartbeat was %d; check that the sequence comes from the "+
				"revoker this decision point follows, or retry", minSeq, applied, head)
		}
		return nil, fail.Unavailablef(cause, "min_sequence %d was not applied in time: this decision point has applied "+
			"sequence %d of %d (status %s); retry shortly", minSeq, applied, head, p.Status())
	}
}
