package posture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// DefaultInterval is how often Runner recomputes the findings by default.
const DefaultInterval = 15 * time.Minute

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	// Gather reads the current inputs (see package reportsvc for the one over the registry and the
	// issuer). Required. Its Input.Now is the instant the findings are computed for.
	Gather func(ctx context.Context) (Input, error)
	// Rules holds the rules' thresholds.
	Rules Config
	// Interval is how often Run recomputes; defaults to DefaultInterval.
	Interval time.Duration
	// OnNew, if set, is called after a computation with the findings of high or critical severity
	// whose ids the previous computation did not have. It runs on the computing goroutine and
	// must not block for long: queue the notifications. The first computation after start only
	// sets the baseline (nothing is new), so a restart does not notify everything again; set
	// NotifyFirst to treat its findings as new.
	OnNew func(ctx context.Context, findings []Finding)
	// NotifyFirst makes the first computation call OnNew too.
	NotifyFirst bool
	// Logger receives failures of scheduled computations; defaults to slog.Default().
	Logger *slog.Logger
}

// Runner computes the findings on demand (Compute) and on a schedule (Run), keeps the latest
// result, and tells OnNew of new high and critical findings. It is safe for concurrent use.
type Runner struct {
	cfg RunnerConfig
	// mu guards latest and known: "new" is relative to the latest result kept.
	mu     sync.Mutex
	latest *Result
	known  map[string]bool // ids of the latest result's findings
}

// NewRunner returns a Runner for cfg.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if cfg.Gather == nil {
		return nil, errors.New("posture: RunnerConfig.Gather is required")
	}
	if err := cfg.Rules.Validate(); err != nil {
		return nil, err
	}
	switch {
	case cfg.Interval < 0:
		return nil, fmt.Errorf("posture: Interval %s is negative", cfg.Interval)
	case cfg.Interval == 0:
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Rules = cfg.Rules.WithDefaults()
	return &Runner{cfg: cfg}, nil
}

// Rules returns the thresholds the runner applies.
func (r *Runner) Rules() Config { return r.cfg.Rules }

// Compute gathers the inputs, evaluates the rules, keeps the result as the latest and returns it.
func (r *Runner) Compute(ctx context.Context) (Result, error) {
	in, err := r.cfg.Gather(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("posture: gather the inventory: %w", err)
	}
	res := Evaluate(in, r.cfg.Rules)
	r.mu.Lock()
	first := r.latest == nil
	if r.latest != nil && res.Time.Before(r.latest.Time) {
		// A slower computation that started earlier finished last: keep the newer one.
		r.mu.Unlock()
		return res, nil
	}
	var fresh []Finding
	known := make(map[string]bool, len(res.Findings))
	for _, f := range res.Findings {
		known[f.ID] = true
		if f.Severity >= High && !r.known[f.ID] && (!first || r.cfg.NotifyFirst) {
			fresh = append(fresh, f)
		}
	}
	r.latest, r.known = &res, known
	r.mu.Unlock()
	if len(fresh) > 0 && r.cfg.OnNew != nil {
		r.cfg.OnNew(ctx, fresh)
	}
	return res, nil
}

// Latest returns the latest result and whether there is one.
func (r *Runner) Latest() (Result, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.latest == nil {
		return Result{}, false
	}
	return *r.latest, true
}

// Run recomputes the findings at once and then every Interval until ctx ends. A failed
// computation is logged and retried at the next tick; the latest result stays.
func (r *Runner) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := r.Compute(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Error("posture: scheduled computation failed; the previous findings stay", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
