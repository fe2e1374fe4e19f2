package reportsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/posture"
	"github.com/treaty-dev/treaty/registry"
)

// AuditReader reads the registry's audit trail in order; *registry.Registry implements it.
type AuditReader interface {
	ListAudit(ctx context.Context, after uint64, limit int) ([]registry.AuditRecord, error)
}

// OffboardingConfirmed is the audit action that records a confirmed offboarding (zero live
// credentials left).
const OffboardingConfirmed = "partner.offboard.confirmed"

// keptOffboardings is how many confirmed offboardings a snapshot carries.
const keptOffboardings = 10

// listPage is the page size the gatherer lists the registry with.
const listPage = 1000

// GatherConfig configures a Gatherer.
type GatherConfig struct {
	// Registry is the registry the posture service runs beside. Required.
	Registry *registry.Registry
	// Audit is the audit trail; defaults to Registry.
	Audit AuditReader
	// Credentials reads the issuer's inventory (issuersvc.NewCredentialSource); nil means none,
	// and the rules that need it are skipped.
	Credentials posture.CredentialSource
	// UsageWindow is the window the inventory's usage covers; defaults to
	// posture.DefaultUsageWindow. Use the runner's posture.Config.UsageWindow.
	UsageWindow time.Duration
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// Logger receives the inventory's failures; defaults to slog.Default().
	Logger *slog.Logger
}

// Gatherer reads what the posture rules and the reports need: every partner, integration,
// workload and client secret from the registry (paginated), the registration time of every
// workload key and the confirmed offboardings from the audit trail (followed incrementally: it is
// append-only), and the issuer's inventory aggregates.
type Gatherer struct {
	cfg GatherConfig

	mu    sync.Mutex // guards the audit follower's state below
	after uint64     // the last audit sequence read
	// keys maps a workload id to the time each of its key ids first appeared in its audit
	// records: when the key was registered.
	keys         map[string]map[string]time.Time
	offboardings []registry.AuditRecord // newest last, at most keptOffboardings
	confirmed    uint64                 // every confirmed offboarding
}

// NewGatherer returns a Gatherer for cfg.
func NewGatherer(cfg GatherConfig) (*Gatherer, error) {
	if cfg.Registry == nil {
		return nil, errors.New("reportsvc: GatherConfig.Registry is required")
	}
	if cfg.Audit == nil {
		cfg.Audit = cfg.Registry
	}
	switch {
	case cfg.UsageWindow < 0:
		return nil, fmt.Errorf("reportsvc: UsageWindow %s is negative", cfg.UsageWindow)
	case cfg.UsageWindow == 0:
		cfg.UsageWindow = posture.DefaultUsageWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Gatherer{cfg: cfg, keys: map[string]map[string]time.Time{}}, nil
}

// Snapshot is one reading of everything the reports draw on.
type Snapshot struct {
	Now          time.Time
	Partners     []registry.Partner
	Integrations []registry.Integration
	Workloads    []registry.Workload
	Secrets      []registry.ClientSecret
	// Inventory is the issuer's inventory; nil if it could not be read (InventoryErr says why)
	// or no CredentialSource is configured.
	Inventory    *posture.Inventory
	InventoryErr error
	// KeyRegistered maps workload id, then key id, to when the key was registered.
	KeyRegistered map[string]map[string]time.Time
	// Offboardings are the last confirmed offboardings, newest first; Confirmed counts all.
	Offboardings []registry.AuditRecord
	Confirmed    uint64
	// AuditRecords is the length of the audit trail.
	AuditRecords uint64
}

// Gather reads the posture rules' input; it is the posture.RunnerConfig.Gather of the service.
func (g *Gatherer) Gather(ctx context.Context) (posture.Input, error) {
	s, err := g.Snapshot(ctx)
	if err != nil {
		return posture.Input{}, err
	}
	return s.Input(), nil
}

// Snapshot reads the registry, the audit trail and the inventory.
func (g *Gatherer) Snapshot(ctx context.Context) (*Snapshot, error) {
	s := &Snapshot{Now: g.cfg.Now().UTC()}
	reg := g.cfg.Registry
	var err error
	if s.Partners, err = all(ctx, reg.ListPartners); err != nil {
		return nil, fmt.Errorf("list partners: %w", err)
	}
	if s.Integrations, err = all(ctx, func(ctx context.Context, n int, tok string) ([]registry.Integration, string, error) {
		return reg.ListIntegrations(ctx, "", n, tok)
	}); err != nil {
		return nil, fmt.Errorf("list integrations: %w", err)
	}
	if s.Workloads, err = all(ctx, func(ctx context.Context, n int, tok string) ([]registry.Workload, string, error) {
		return reg.ListWorkloads(ctx, "", n, tok)
	}); err != nil {
		return nil, fmt.Errorf("list workloads: %w", err)
	}
	for _, w := range s.Workloads {
		if w.State == workloadRetired {
			continue // a retired workload's secrets no longer authenticate
		}
		secrets, err := reg.ListClientSecrets(ctx, w.ID)
		switch {
		case fail.KindOf(err) == fail.NotFound:
		case err != nil:
			return nil, fmt.Errorf("list client secrets of %s: %w", w.ID, err)
		}
		s.Secrets = append(s.Secrets, secrets...)
	}
	if err := g.follow(ctx, s); err != nil {
		return nil, fmt.Errorf("read the audit trail: %w", err)
	}
	if g.cfg.Credentials != nil {
		inv, err := g.cfg.Credentials.Summarize(ctx, s.Now.Add(-g.cfg.UsageWindow))
		if err != nil {
			g.cfg.Logger.Warn("reportsvc: the issuer's inventory could not be read; reports go without it", "err", err)
			s.InventoryErr = err
		} else {
			s.Inventory = &inv
		}
	} else {
		s.InventoryErr = errors.New("no issuer inventory is configured")
	}
	return s, nil
}

// all lists every page of a registry list.
func all[T any](ctx context.Context, list func(context.Context, int, string) ([]T, string, error)) ([]T, error) {
	var out []T
	tok := ""
	for {
		page, next, err := list(ctx, listPage, tok)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		tok = next
	}
}

// follow reads the audit records appended since the last call and copies the follower's state
// into s.
func (g *Gatherer) follow(ctx context.Context, s *Snapshot) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for {
		recs, err := g.cfg.Audit.ListAudit(ctx, g.after, listPage)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			g.apply(rec)
			g.after = rec.Sequence
		}
		if len(recs) < listPage {
			break
		}
	}
	s.AuditRecords = g.after
	s.Confirmed = g.confirmed
	for i := len(g.offboardings) - 1; i >= 0; i-- {
		s.Offboardings = append(s.Offboardings, g.offboardings[i])
	}
	s.KeyRegistered = make(map[string]map[string]time.Time, len(g.keys))
	for w, ks := range g.keys {
		m := make(map[string]time.Time, len(ks))
		for k, t := range ks {
			m[k] = t
		}
		s.KeyRegistered[w] = m
	}
	return nil
}

// apply folds one audit record into the follower's state.
func (g *Gatherer) apply(rec registry.AuditRecord) {
	if rec.Action == OffboardingConfirmed {
		g.confirmed++
		g.offboardings = append(g.offboardings, rec)
		if len(g.offboardings) > keptOffboardings {
			g.offboardings = g.offboardings[1:]
		}
	}
	id, ok := strings.CutPrefix(rec.Target, "workload/")
	if !ok || rec.After["key_ids"] == "" {
		return
	}
	ks := g.keys[id]
	if ks == nil {
		ks = map[string]time.Time{}
		g.keys[id] = ks
	}
	for _, kid := range strings.Fields(rec.After["key_ids"]) {
		if _, seen := ks[kid]; !seen {
			ks[kid] = rec.Time // the first record that lists a key is the one that registered it
		}
	}
}
