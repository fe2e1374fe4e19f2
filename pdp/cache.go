package pdp

import (
	"bytes"
	"hash/maphash"
	"math/bits"
	"strings"
	"sync/atomic"

	"github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/token"
)

// DefaultTokenCacheSize is the default bound on the verified-token cache: enough for every live
// token of a large deployment (10,000 partners with a few workloads each, refreshing tokens every
// few minutes), at roughly 1.3 KiB per entry when full (a 1 KiB entry and its claims' strings).
const DefaultTokenCacheSize = 100_000

// verified is a token whose signature verified, with what the verification found. It is
// immutable once in the cache. It stays usable exactly while key is still the state's record for
// kid: the feed replaces a key's record whenever the key is republished or revoked (and a state
// loaded from the store or a snapshot holds new records), so a cached verification can never
// outlive the key it was made with. Everything else (revocation, blocks, watermarks, lifecycle,
// scopes, expiry) is checked on every decision.
//
// The mutable parts are the grant memo (memo.go), written under its own sequence counter: it
// holds facts about one state, and is used only on that state; and when the token was last
// allowed (seen), for the usage reports.
//
// Layout: a hit on a scattered token is bound by cache misses, so everything a hit reads lies in
// one allocation, in the order it is read, so that the hardware's stream prefetcher follows: the
// header (hash, exp, the memo, the token's length) in the first cache line, then the token's bytes
// inline (all of a typical token), which the lookup compares in full, followed by copies of the
// audience and scope claims that the memo's decisions compare, then the claims. Strings of their
// own would each cost a dependent miss after the entry's.
type verified struct {
	hash uint64
	exp  int64 // claims.Expiry

	memoSeq    atomic.Uint64 // memo.go: odd while the memo below is written
	memoState  atomic.Uint64
	memoScopes atomic.Uint64
	memoEnd    atomic.Int64

	// seen is when a decision last allowed the token (Unix seconds), zero once a usage report
	// harvested it (usage.go). Written only when the second changes, so hits do not all write
	// the entry's first cache line.
	seen atomic.Int64

	n      int  // len(token)
	inline bool // head holds the audience and scope after the token

	head   [inlineToken]byte // token[:min(n, inlineToken)], then if inline the audience and scope
	claims token.Claims
	rest   string // the token's bytes past inlineToken, if any
	kid    string
	key    *feed.SigningKey
}

// inlineToken is how many bytes an entry holds inline: enough for EdDSA and ES256 tokens of
// Treaty's claims (400 to 500 bytes) with their audience and scope, and most RS256 ones (700 to
// 800), and the size that makes an entry exactly 1 KiB (a malloc size class; TestVerifiedSize).
// An exchanged token (its act and anc claims) may spill past it: the rest is one more allocation
// when it is cached, never on a decision.
const inlineToken = 704

// newVerified returns the cache entry of a verified token tok with hash h.
func newVerified(tok string, h uint64, kid string, key *feed.SigningKey, claims *token.Claims) *verified {
	e := &verified{hash: h, exp: claims.Expiry, n: len(tok), claims: *claims, kid: kid, key: key}
	n := copy(e.head[:], tok)
	if n < len(tok) {
		e.rest = strings.Clone(tok[n:]) // never pins a larger buffer the caller's string points into
	}
	if len(tok)+len(claims.Audience)+len(claims.Scope) <= inlineToken {
		n += copy(e.head[n:], claims.Audience)
		copy(e.head[n:], claims.Scope)
		e.inline = true
	}
	return e
}

// is reports whether the entry is tok's: the whole token is compared, the hash only finds it.
func (e *verified) is(tok string) bool {
	if len(tok) != e.n {
		return false
	}
	if len(tok) <= inlineToken {
		return string(e.head[:len(tok)]) == tok // compared in place, without a copy
	}
	return string(e.head[:]) == tok[:inlineToken] && e.rest == tok[inlineToken:]
}

// audienceIs reports whether aud is the token's audience, reading the inline copy if there is one.
func (e *verified) audienceIs(aud string) bool {
	if !e.inline {
		return e.claims.Audience == aud
	}
	return string(e.head[e.n:e.n+len(e.claims.Audience)]) == aud
}

// scopeIndex returns the index of scope among the token's space-delimited scopes, walked as
// token.Claims.HasScope walks them, or -1. It reads the inline copy if there is one.
func (e *verified) scopeIndex(scope string) int {
	if !e.inline {
		return scopeIndex(e.claims.Scope, scope)
	}
	at := e.n + len(e.claims.Audience)
	rest := e.head[at : at+len(e.claims.Scope)]
	for i := 0; len(rest) > 0; i++ {
		s := rest
		if j := bytes.IndexByte(rest, ' '); j >= 0 {
			s, rest = rest[:j], rest[j+1:]
		} else {
			rest = nil
		}
		if string(s) == scope {
			return i
		}
	}
	return -1
}

// scopeIndex returns the index of scope among the space-delimited scopes, walked as
// token.Claims.HasScope walks them, or -1.
func scopeIndex(scopes, scope string) int {
	for i := 0; scopes != ""; i++ {
		var s string
		s, scopes, _ = strings.Cut(scopes, " ")
		if s == scope {
			return i
		}
	}
	return -1
}

// tokenCache is the verified-token cache: a fixed-size, set-associative table of atomic pointers
// to immutable entries. A lookup hashes the token (maphash, seeded per process, so that nobody
// outside can aim tokens at one set), reads the 64-byte set the hash selects first (and the
// second one it may live in, if not found there), and compares the full token of the entry whose
// tag matches: an atomic load per way and no lock, so hits scale with cores. Inserts store the entry and its tag with two atomic stores; a racing insert
// can leave a tag that names another entry, which a lookup sees as a miss, never as a wrong hit,
// since the full token is compared. The table never grows: when both sets are full, the entry of
// the two that expires first is evicted; expired entries are never returned, and sweep clears
// them.
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

// hash returns the token's hash; never zero, which marks an empty way. It hashes the token's length
// and its last hashedTail bytes, which are the JWS signature's: unique to the token, and not
// chosen by whoever sends it (only verified tokens are cached, and a token whose tail imitates a
// cached one's is compared in full and found different). Hashing the whole token would read all of
// it before the lookup can start; a scattered token's bytes are a cache miss, and this way the
// lookup's misses (its set, its entry) overlap with reading the rest, in the full compare.
func (c *tokenCache) hash(tok string) uint64 {
	h := maphash.String(c.seed, tok[max(0, len(tok)-hashedTail):]) ^ uint64(len(tok))*0x9e3779b97f4a7c15
	if h == 0 {
		h = 1
	}
	return h
}

// hashedTail is how many of a token's last bytes its hash covers: a 43-byte Ed25519 or ES256
// signature is 86 base64url characters, an RS256 one 342.
const hashedTail = 64

// sets returns the two sets a hash may live in: each is the high half of a 64-bit product with
// the number of sets, which spreads hashes evenly over any number of sets (so the bound is exactly
// the configured size); the second uses the hash rotated, an independent-enough second choice.
// Two choices keep sets from overflowing while the table has room: with one, a quarter-full
// table of 4-way sets already overflows about 1% of its sets, and each overflow is a 50 µs
// signature check on every later sight of an evicted token.
func (c *tokenCache) sets2(h uint64) (*cacheSet, *cacheSet) {
	n := uint64(len(c.sets))
	a, _ := bits.Mul64(h, n)
	b, _ := bits.Mul64(bits.RotateLeft64(h, 32), n)
	return &c.sets[a], &c.sets[b]
}

// find returns the entry for tok in set s, or nil.
func (s *cacheSet) find(tok string, h uint64, now int64) *verified {
	for i := range ways {
		if s.tags[i].Load() != h {
			continue
		}
		if e := s.entries[i].Load(); e != nil && e.hash == h && e.exp > now && e.is(tok) {
			return e
		}
	}
	return nil
}

// get returns the cached verification of tok, or nil. now is in Unix seconds: an entry whose
// token expired is never returned.
func (c *tokenCache) get(tok string, h uint64, now int64) *verified {
	a, b := c.sets2(h)
	if e := a.find(tok, h, now); e != nil {
		return e
	}
	if a == b {
		return nil
	}
	return b.find(tok, h, now)
}

// put caches a verification. It replaces the token's own entry, else takes an empty or expired
// way of the set with more of them (the first on a tie: "the power of two choices" keeps sets
// balanced), else evicts the entry of the two sets that expires first. The token is copied, so
// that the cache never pins a larger buffer the caller's string points into.
func (c *tokenCache) put(tok string, h uint64, kid string, key *feed.SigningKey, claims *token.Claims, now int64) {
	e := newVerified(tok, h, kid, key, claims)
	a, b := c.sets2(h)
	var (
		victim    *cacheSet
		vi        int
		victimExp = int64(1<<63 - 1)
		bestFree  = 0 // free ways in victim's set, when victim is a free way
	)
	for _, s := range [2]*cacheSet{a, b} {
		free, firstFree := 0, 0
		for i := range ways {
			old := s.entries[i].Load()
			switch {
			case old != nil && old.hash == h && old.is(tok):
				s.entries[i].Store(e) // the token's own entry: replace it where it is
				s.tags[i].Store(h)
				return
			case old == nil || old.exp <= now:
				if free == 0 {
					firstFree = i
				}
				free++
			case bestFree == 0 && old.exp < victimExp:
				victim, vi, victimExp = s, i, old.exp
			}
		}
		if free > bestFree {
			victim, vi, bestFree = s, firstFree, free
		}
	}
	if bestFree == 0 {
		// Both sets are full of live entries: before evicting one, try to move one of them to
		// its other set (one step of cuckoo hashing), which keeps a table near its bound from
		// evicting live tokens that have room elsewhere. It is copied there before its way is
		// reused, so that a concurrent lookup always finds it in one of the two.
		for _, s := range [2]*cacheSet{a, b} {
			for i := range ways {
				old := s.entries[i].Load()
				if old == nil {
					continue
				}
				oa, ob := c.sets2(old.hash)
				alt := oa
				if alt == s {
					alt = ob
				}
				if alt == s {
					continue
				}
				if j := alt.freeWay(now); j >= 0 {
					alt.entries[j].Store(old)
					alt.tags[j].Store(old.hash)
					s.entries[i].Store(e)
					s.tags[i].Store(h)
					return
				}
			}
		}
	}
	victim.entries[vi].Store(e)
	victim.tags[vi].Store(h)
}

// freeWay returns an empty or expired way of s, or -1.
func (s *cacheSet) freeWay(now int64) int {
	for i := range ways {
		if old := s.entries[i].Load(); old == nil || old.exp <= now {
			return i
		}
	}
	return -1
}

// sweep drops every entry whose token has expired (now in Unix seconds), so that memory follows
// the live tokens rather than the table's high-water mark. It returns how many it dropped.
func (c *tokenCache) sweep(now int64) int {
	n := 0
	for si := range c.sets {
		s := &c.sets[si]
		for i := range ways {
			if e := s.entries[i].Load(); e != nil && e.exp <= now && s.entries[i].CompareAndSwap(e, nil) {
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
