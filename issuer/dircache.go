package issuer

import (
	"context"
	"sync"
	"time"
)

// maxCached bounds each of a CachedDirectory's maps; past it, expired entries are swept on insert,
// and if none has expired the map is cleared (a cache miss costs one registry call, nothing more).
const maxCached = 100_000

// CachedDirectory wraps d so that a successful lookup is answered from memory for ttl. Without it
// every issuance asks the registry three questions (workload, integration, partner), which on one
// machine costs more than the rest of the issuance.
//
// What it trades: for up to ttl after a registry change the issuer may act on the previous
// answer. Enforcement state does not depend on it (the PDP, asked on every issuance at or after
// the feed sequence of the issuer's key, decides blocks, suspensions, the contract window and the
// scope ceiling from the feed), but a workload key removed from the registry may still
// authenticate, and an integration's audiences and maximum lifetime may be the old ones, for up to
// ttl. Keep ttl short (a second). Errors, NotFound included, are never cached, so a workload
// registered a moment ago is found at once.
func CachedDirectory(d Directory, ttl time.Duration) Directory {
	return &cachedDirectory{d: d, ttl: ttl}
}

type cachedDirectory struct {
	d   Directory
	ttl time.Duration

	workloads    cache[Workload]
	integrations cache[Integration]
	partners     cache[Partner]
}

func (c *cachedDirectory) Workload(ctx context.Context, id string) (Workload, error) {
	return c.workloads.get(ctx, id, c.ttl, c.d.Workload)
}

func (c *cachedDirectory) Integration(ctx context.Context, id string) (Integration, error) {
	return c.integrations.get(ctx, id, c.ttl, c.d.Integration)
}

// ClientSecrets is never cached: a revoked secret must stop authenticating at once.
func (c *cachedDirectory) ClientSecrets(ctx context.Context, workloadID string) ([]ClientSecretVerifier, error) {
	return c.d.ClientSecrets(ctx, workloadID)
}

func (c *cachedDirectory) Partner(ctx context.Context, id string) (Partner, error) {
	return c.partners.get(ctx, id, c.ttl, c.d.Partner)
}

type cached[T any] struct {
	v       T
	expires time.Time
}

// cache maps ids to answers. The values are shared by every caller: the issuer only reads them.
type cache[T any] struct {
	mu sync.RWMutex
	m  map[string]cached[T]
}

func (c *cache[T]) get(ctx context.Context, id string, ttl time.Duration, load func(context.Context, string) (T, error)) (T, error) {
	now := time.Now()
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.v, nil
	}
	v, err := load(ctx, id)
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]cached[T])
	}
	if len(c.m) >= maxCached {
		for k, old := range c.m {
			if !now.Before(old.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCached {
			clear(c.m)
		}
	}
	c.m[id] = cached[T]{v: v, expires: now.Add(ttl)}
	return v, nil
}
