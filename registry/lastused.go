package registry

import (
	"context"
	"time"
)

// WorkloadUsage reads when workloads last used a credential, from the issuer's inventory (which
// PDPs report usage to). The registry does not store it: a workload's last use changes with every
// usage report, far more often than its record. A Config.Inventory that also implements
// WorkloadUsage (issuersvc.NewCredentialInventory does) fills Workload.LastUsed in GetWorkload and
// ListWorkloads.
type WorkloadUsage interface {
	// WorkloadsLastUsed returns the last use of each of ids that has one on record (at most
	// MaxWorkloadUsageBatch ids); workloads never used are absent.
	WorkloadsLastUsed(ctx context.Context, ids []string) (map[string]time.Time, error)
}

// MaxWorkloadUsageBatch is the most workload ids the registry asks WorkloadUsage about at once: a
// full page of workloads, and the issuer's bound (issuer.MaxWorkloadUsageQuery).
const MaxWorkloadUsageBatch = maxPageSize

// lastUsedWait bounds how long a workload read waits for the issuer's answer: last use is a
// convenience on a read that must not fail or stall because the issuer is slow or down.
const lastUsedWait = 500 * time.Millisecond

// fillLastUsed sets the LastUsed of ws from the inventory, when it can tell. A failure (the
// issuer unreachable, or slower than lastUsedWait) leaves them as they are, logged at debug.
func (r *Registry) fillLastUsed(ctx context.Context, ws []Workload) {
	u, ok := r.cfg.Inventory.(WorkloadUsage)
	if !ok || len(ws) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, lastUsedWait)
	defer cancel()
	for start := 0; start < len(ws); start += MaxWorkloadUsageBatch {
		batch := ws[start:min(start+MaxWorkloadUsageBatch, len(ws))]
		ids := make([]string, len(batch))
		for i, w := range batch {
			ids[i] = w.ID
		}
		last, err := u.WorkloadsLastUsed(ctx, ids)
		if err != nil {
			r.cfg.Logger.Debug("registry: workloads' last use unavailable", "workloads", len(ws), "err", err)
			return
		}
		for i := range batch {
			if t, ok := last[batch[i].ID]; ok && t.After(batch[i].LastUsed) {
				batch[i].LastUsed = t.UTC()
			}
		}
	}
}
