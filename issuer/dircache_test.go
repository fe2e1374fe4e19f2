package issuer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/issuer"
)

// countingDirectory counts the lookups that reach the real registry.
type countingDirectory struct {
	issuer.Directory
	workloads, integrations, partners atomic.Int64
}

func (d *countingDirectory) Workload(ctx context.Context, id string) (issuer.Workload, error) {
	d.workloads.Add(1)
	return d.Directory.Workload(ctx, id)
}

func (d *countingDirectory) Integration(ctx context.Context, id string) (issuer.Integration, error) {
	d.integrations.Add(1)
	return d.Directory.Integration(ctx, id)
}

func (d *countingDirectory) Partner(ctx context.Context, id string) (issuer.Partner, error) {
	d.partners.Add(1)
	return d.Directory.Partner(ctx, id)
}

func TestCachedDirectory(t *testing.T) {
	counting := &countingDirectory{}
	var cached issuer.Directory
	e := newEnv(t, func(c *issuer.Config) {
		counting.Directory = c.Directory
		cached = issuer.CachedDirectory(counting, time.Hour)
		c.Directory = cached
	})
	for range 3 {
		e.issue(e.request())
	}
	if w, i, p := counting.workloads.Load(), counting.integrations.Load(), counting.partners.Load(); w != 1 || i != 1 || p != 1 {
		t.Fatalf("three issuances asked the registry %d/%d/%d times (workload/integration/partner), want once each", w, i, p)
	}
	// Errors are never cached: a workload registered after a miss is found at once.
	ctx := context.Background()
	if _, err := cached.Workload(ctx, "late-bot"); fail.KindOf(err) != fail.NotFound {
		t.Fatalf("unknown workload: %v, want NotFound", err)
	}
	e.addWorkload("late-bot", integration)
	if w, err := cached.Workload(ctx, "late-bot"); err != nil || w.ID != "late-bot" {
		t.Fatalf("workload registered after a miss: %+v, %v", w, err)
	}
}
