package registry_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/registry"
)

// usageInventory stands in for the issuer's inventory as the registry sees it, to give each
// answer the issuer can give: times, an error, or none before the caller gives up. The issuer's
// side runs for real in services/issuersvc and services (the end-to-end test).
type usageInventory struct {
	last  map[string]time.Time
	err   error
	stall bool
}

func (u usageInventory) LiveCredentials(context.Context, string, string) ([]string, string, error) {
	return nil, "", errors.New("not in this test")
}

func (u usageInventory) CountLive(context.Context, string, uint64) (uint64, uint64, error) {
	return 0, 0, errors.New("not in this test")
}

func (u usageInventory) WorkloadsLastUsed(ctx context.Context, ids []string) (map[string]time.Time, error) {
	if u.stall {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if u.err != nil {
		return nil, u.err
	}
	out := map[string]time.Time{}
	for _, id := range ids {
		if t, ok := u.last[id]; ok {
			out[id] = t
		}
	}
	return out, nil
}

// inventoryWithoutUsage is an inventory that cannot tell last use.
type inventoryWithoutUsage struct{ registry.CredentialInventory }

// GetWorkload and ListWorkloads fill LastUsed from the inventory when it answers, and otherwise
// return the workload without it, never an error, within a bounded wait.
func TestWorkloadLastUsed(t *testing.T) {
	used := now.Add(-time.Hour)
	tests := []struct {
		name string
		inv  registry.CredentialInventory
		want time.Time
	}{
		{"no inventory", nil, time.Time{}},
		{"inventory without usage", inventoryWithoutUsage{usageInventory{}}, time.Time{}},
		{"answers", usageInventory{last: map[string]time.Time{"w-used": used}}, used},
		{"fails", usageInventory{err: errors.New("issuer unreachable")}, time.Time{}},
		{"stalls", usageInventory{stall: true}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newRevoker(t)
			e.node = startNode(t, filepath.Join(t.TempDir(), "registry.db"), e.pub, func(c *registry.Config) { c.Inventory = tt.inv })
			e.mustPartner(t, "acme")
			e.mustIntegration(t, "acme-crm", "acme")
			e.mustWorkload(t, "w-used", "acme-crm")
			e.mustWorkload(t, "w-idle", "acme-crm")
			ctx := context.Background()

			start := time.Now()
			w, err := e.reg.GetWorkload(ctx, "w-used")
			if err != nil {
				t.Fatalf("GetWorkload: %v", err)
			}
			if !w.LastUsed.Equal(tt.want) {
				t.Errorf("GetWorkload: last used %v, want %v", w.LastUsed, tt.want)
			}
			ws, _, err := e.reg.ListWorkloads(ctx, "acme-crm", 0, "")
			if err != nil || len(ws) != 2 {
				t.Fatalf("ListWorkloads = %d workloads, %v; want 2", len(ws), err)
			}
			for _, w := range ws {
				want := tt.want
				if w.ID != "w-used" {
					want = time.Time{}
				}
				if !w.LastUsed.Equal(want) {
					t.Errorf("ListWorkloads: %s last used %v, want %v", w.ID, w.LastUsed, want)
				}
			}
			// Two reads; a stalled inventory costs each one its bounded wait, no more.
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("two reads took %s", d)
			}
			if _, err := e.reg.GetWorkload(ctx, "nope"); err == nil {
				t.Error("GetWorkload of an unknown id succeeded")
			}
		})
	}
}
