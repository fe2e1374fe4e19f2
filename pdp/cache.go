package pdp

import (
	"hash/maphash"
	"math/bits"
	"strings"
	"sync/atomic"

	"github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/token"
)

// DefaultTokenCacheSize is the default bound on the verified-token cache: enough for every live
// token of a large deployment (10,000 partners with a few workloads each, refreshing tokens every
// few minutes), at roughly 1 KiB per entry when full.
const DefaultTokenCacheSize = 100_000

// verified is a token whose signature verified, with what the verification found. It is
// immutable once in the cache. It stays usable exactly while key is still the state's record for
// kid: the feed replaces a key's record whenever the key is republished or revoked (and a state
// loaded from the store or a snapshot holds new records), so a cached verification can never
// outlive the key it was made with. Everything else (revocation, blocks, watermarks, lifecycle,
// scopes, expiry) is checked on every decision.
type verified struct {
	token  string // the full token, compared on every hit: the hash only finds the slot
	hash   uint64
	kid    string
	key    *feed.SigningKey
	claims token.Claims
}

// tokenCache is the verified-token cache: a fixed-size, set-associative table of atomic pointers
// to immutable entries. A lookup hashes the token (maphash, seeded per process, so that nobody
// outside can aim tokens at one set), reads the one 64-byte set the hash selects, and compares
// the full token of the entry whose tag matches: one atomic load per way and no lock, so hits
// scale with cores. Inserts store the entry and its tag with two atomic stores; a racing insert
// can leave a tag that names another entry, which a lookup sees as a miss, never as a wrong hit,
// since the full token is compared. The table never grows: a full set evicts its entry that
// expires first, expired entries are never returned, and sweep clears them.
//
// Layout, measured (BenchmarkTokenCache): a map[string] keyed by the token pays for hashing and
// comparing ~400-byte keys scattered over memory; a set here is one cache line holding four
// 64-bit tags beside four pointers, so a lookup touches that line, then the one entry it compares.
type tokenCache struct {
	seed maphash.Seed
	sets []cacheSet
}

// ways is the associativity: four tags and four pointers fill one 64-byte cache line.
const ways = 4

type cacheSet struct {
	tags    [ways]atomic.Uint64
	entries [ways]atomic.Pointer[verified]
}

// newTokenCache returns a cache holding at most size entries, or nil (no cache) for size <= 0.
func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		return nil
	}
	return &tokenCache{seed: maphash.MakeSeed(), sets: make([]cacheSet, (size+ways-1)/ways)}
}

// hash returns the token's hash; never zero, which marks an empty way.
func (c *tokenCache) hash(tok string) uint64 {
	h := maphash.String(c.seed, tok)
	if h == 0 {
		h = 1
	}
	return h
}

// set returns the set a hash selects: the high half of hash × sets spreads hashes evenly over any
// number of sets, so the bound is exactly the configured size.
func (c *tokenCache) set(h uint64) *cacheSet {
	i, _ := bits.Mul64(h, uint64(len(c.sets)))
	return &c.sets[i]
}

// get returns the cached verification of tok, or nil. now is in Unix seconds: an entry whose
// token expired is never returned.
func (c *tokenCache) get(tok string, h uint64, now int64) *verified {
	s := c.set(h)
	for i := range ways {
		if s.tags[i].Load() != h {
			continue
		}
		if e := s.entries[i].Load(); e != nil && e.hash == h && e.token == tok && e.claims.Expiry > now {
			return e
		}
	}
	return nil
}

// put caches a verification. It replaces the token's own entry, an empty or expired way, or
// else the entry that expires first. The token is copied, so that the cache never pins a larger
// buffer the caller's string points into.
func (c *tokenCache) put(tok string, h uint64, kid string, key *feed.SigningKey, claims *token.Claims, now int64) {
	e := &verified{token: strings.Clone(tok), hash: h, kid: kid, key: key, claims: *claims}
	s := c.set(h)
	victim, victimExp := 0, int64(1<<63-1)
	for i := range ways {
		old := s.entries[i].Load()
		if old == nil || old.claims.Expiry <= now || (old.hash == h && old.token == tok) {
			victim = i
			break
		}
		if old.claims.Expiry < victimExp {
			victim, victimExp = i, old.claims.Expiry
		}
	}
	s.entries[victim].Store(e)
	s.tags[victim].Store(h)
}

// sweep drops every entry whose token has expired (now in Unix seconds), so that memory follows
// the live tokens rather than the table's high-water mark. It returns how many it dropped.
func (c *tokenCache) sweep(now int64) int {
	n := 0
	for si := range c.sets {
		s := &c.sets[si]
		for i := range ways {
			if e := s.entries[i].Load(); e != nil && e.claims.Expiry <= now && s.entries[i].CompareAndSwap(e, nil) {
				s.tags[i].CompareAndSwap(e.hash, 0)
				n++
			}
		}
	}
	return n
}

// len counts the entries, for tests and metrics (not a constant-time operation).
func (c *tokenCache) len() int {
	n := 0
	for si := range c.sets {
		for i := range ways {
			if c.sets[si].entries[i].Load() != nil {
				n++
			}
		}
	}
	return n
}
