package pdp

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Usage is when the PDP last allowed a request with a credential.
type Usage struct {
	// CredentialID is the token's jti.
	CredentialID string
	// LastSeen is the last time a decision allowed it, to the second.
	LastSeen time.Time
}

// UsageSink receives the PDP's usage reports: the issuer's inventory, which keeps each
// credential's last-seen time (issuersvc.NewUsageSink implements it over gRPC).
type UsageSink interface {
	ReportUsage(ctx context.Context, usages []Usage) error
}

// Defaults of UsageReporterConfig.
const (
	DefaultUsageInterval = 10 * time.Second
	DefaultUsageBatch    = 1000
	// maxUsagePending bounds what a reporter keeps while the sink is unreachable; past it the
	// oldest harvest is dropped (a last-seen time is a hint, not an audit record).
	maxUsagePending = 100_000
)

// UsageReporterConfig configures a UsageReporter.
type UsageReporterConfig struct {
	// PDP is the decision point whose allowed tokens are reported.
	PDP *PDP
	// Sink receives the reports.
	Sink UsageSink
	// Interval is how often the reporter harvests and reports; defaults to DefaultUsageInterval.
	Interval time.Duration
	// Batch is the most entries one report carries; defaults to DefaultUsageBatch.
	Batch int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// UsageReporter reports, in batches, when the PDP last allowed each token: the decision path only
// stores a timestamp in the token's verified-token cache entry (no allocation, no lock), and the
// reporter harvests the entries every interval and sends what changed to the sink. Tokens decided
// without the cache (claims from a trusted caller, or a PDP with the cache turned off) are not
// reported, nor is an entry evicted before its harvest.
type UsageReporter struct {
	cfg     UsageReporterConfig
	log     *slog.Logger
	pending []Usage
}

// NewUsageReporter returns a reporter; call Run.
func NewUsageReporter(cfg UsageReporterConfig) (*UsageReporter, error) {
	if cfg.PDP == nil || cfg.Sink == nil {
		return nil, errors.New("pdp: UsageReporterConfig needs a PDP and a Sink")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultUsageInterval
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultUsageBatch
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &UsageReporter{cfg: cfg, log: cfg.Logger}, nil
}

// Run reports every interval until ctx ends, then makes a last report (with a few seconds'
// grace) so that a clean shutdown loses nothing.
func (r *UsageReporter) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			r.Report(final)
			cancel()
			return
		case <-t.C:
			r.Report(ctx)
		}
	}
}

// Report harvests what was allowed since the last harvest and sends it, in batches of at most
// Batch entries. What the sink refuses is kept for the next report. It is not safe to call
// concurrently with itself (Run calls it).
func (r *UsageReporter) Report(ctx context.Context) error {
	if tc := r.cfg.PDP.tokens; tc != nil {
		tc.harvest(func(jti string, seen int64) {
			r.pending = append(r.pending, Usage{CredentialID: jti, LastSeen: time.Unix(seen, 0)})
		})
	}
	if n := len(r.pending) - maxUsagePending; n > 0 {
		r.log.Warn("pdp: usage reports backed up; dropping the oldest", "dropped", n)
		r.pending = r.pending[n:]
	}
	for len(r.pending) > 0 {
		n := min(len(r.pending), r.cfg.Batch)
		if err := r.cfg.Sink.ReportUsage(ctx, r.pending[:n]); err != nil {
			r.log.Warn("pdp: usage report failed; kept for the next one", "entries", len(r.pending), "err", err)
			return err
		}
		r.pending = r.pending[n:]
	}
	r.pending = nil
	return nil
}

// markSeen records that a decision allowed the token at now (Unix seconds). A token seen for the
// first time was cached by verifyToken without handing its entry back, so it is looked up.
func (p *PDP) markSeen(e *verified, tok string, now int64) {
	if e == nil {
		if p.tokens == nil {
			return
		}
		if e = p.tokens.get(tok, p.tokens.hash(tok), now); e == nil {
			return
		}
	}
	e.markSeen(now)
}

// markSeen stores now unless it is there already, so that hits within one second do not write.
func (e *verified) markSeen(now int64) {
	if e.seen.Load() != now {
		e.seen.Store(now)
	}
}

// harvest calls fn with the jti and last-allowed time of every entry allowed since the last
// harvest, and clears them.
func (c *tokenCache) harvest(fn func(jti string, seen int64)) {
	for si := range c.sets {
		for i := range ways {
			if e := c.sets[si].entries[i].Load(); e != nil && e.seen.Load() != 0 {
				if seen := e.seen.Swap(0); seen != 0 && e.claims.ID != "" {
					fn(e.claims.ID, seen)
				}
			}
		}
	}
}
