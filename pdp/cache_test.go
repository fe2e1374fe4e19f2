package pdp

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/token"
)

func TestTokenCache(t *testing.T) {
	key := &feed.SigningKey{Kid: "k1"}
	const now = 1000
	claims := func(exp int64) *token.Claims { return &token.Claims{ID: "jti", Expiry: exp} }

	t.Run("hit, and a miss for another token with the same hash", func(t *testing.T) {
		c := newTokenCache(8)
		c.put("token-a", 42, "k1", key, claims(now+60), now)
		if e := c.get("token-a", 42, now); e == nil || e.key != key || e.kid != "k1" {
			t.Fatalf("get = %+v", e)
		}
		if e := c.get("token-b", 42, now); e != nil {
			t.Fatalf("a colliding hash returned another token's entry: %+v", e)
		}
		if e := c.get("token-a", 43, now); e != nil {
			t.Fatalf("another hash found the entry")
		}
	})
	t.Run("expired entries are never returned, and swept", func(t *testing.T) {
		c := newTokenCache(8)
		c.put("token-a", 7, "k1", key, claims(now+1), now)
		if c.get("token-a", 7, now) == nil {
			t.Fatal("live entry missing")
		}
		if c.get("token-a", 7, now+1) != nil {
			t.Fatal("returned an entry at its expiry")
		}
		if n := c.sweep(now + 1); n != 1 || c.len() != 0 {
			t.Fatalf("sweep dropped %d, %d left", n, c.len())
		}
	})
	t.Run("a full set evicts the entry that expires first", func(t *testing.T) {
		c := newTokenCache(ways) // one set: every hash lands in it
		for i := range ways {
			c.put(fmt.Sprint("token-", i), uint64(i+1), "k1", key, claims(now+100+int64(i)), now)
		}
		c.put("token-new", 99, "k1", key, claims(now+500), now)
		if c.len() != ways {
			t.Fatalf("len = %d, want %d", c.len(), ways)
		}
		if c.get("token-0", 1, now) != nil {
			t.Error("the entry expiring first survived")
		}
		for i := 1; i < ways; i++ {
			if c.get(fmt.Sprint("token-", i), uint64(i+1), now) == nil {
				t.Errorf("token-%d was evicted", i)
			}
		}
		if c.get("token-new", 99, now) == nil {
			t.Error("the new entry is missing")
		}
	})
	t.Run("putting a token again replaces its entry", func(t *testing.T) {
		c := newTokenCache(ways)
		c.put("token-a", 5, "k1", key, claims(now+60), now)
		other := &feed.SigningKey{Kid: "k1"}
		c.put("token-a", 5, "k1", other, claims(now+60), now)
		if c.len() != 1 || c.get("token-a", 5, now).key != other {
			t.Errorf("len %d, entry %+v", c.len(), c.get("token-a", 5, now))
		}
	})
	t.Run("bounded", func(t *testing.T) {
		c := newTokenCache(1000)
		for i := range 5000 {
			tok := fmt.Sprint("token-", i)
			c.put(tok, c.hash(tok), "k1", key, claims(now+60), now)
		}
		if n := c.len(); n > 1000 || n < 900 {
			t.Errorf("len = %d after 5000 puts into 1000 entries", n)
		}
	})
	t.Run("off", func(t *testing.T) {
		if newTokenCache(0) != nil || newTokenCache(-1) != nil {
			t.Error("a cache of size <= 0 exists")
		}
	})
}

// Concurrent lookups, inserts and sweeps: run with -race. Every hit is the entry for its token.
func TestTokenCacheConcurrent(t *testing.T) {
	c := newTokenCache(64)
	key := &feed.SigningKey{Kid: "k1"}
	toks := make([]string, 256)
	for i := range toks {
		toks[i] = fmt.Sprintf("token-%03d", i)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				tok := toks[(i*7+g)%len(toks)]
				h := c.hash(tok)
				if e := c.get(tok, h, 1000); e != nil {
					if !e.is(tok) || e.claims.ID != tok {
						t.Errorf("get(%s) returned %s", tok, e.claims.ID)
						return
					}
					continue
				}
				c.put(tok, h, "k1", key, &token.Claims{ID: tok, Expiry: 1000 + int64(i%3)}, 1000)
				if i%500 == 0 {
					c.sweep(1001)
				}
			}
		})
	}
	wg.Wait()
}

// An entry fills a 1 KiB malloc size class exactly: inlineToken is sized for it.
func TestVerifiedSize(t *testing.T) {
	if got := unsafe.Sizeof(verified{}); got != 1024 {
		t.Errorf("sizeof(verified) = %d, want 1024: adjust inlineToken by %d", got, 1024-int(got))
	}
}

// An entry is its token's and no other's, whether the token fits inline or spills past it.
func TestVerifiedIs(t *testing.T) {
	key := &feed.SigningKey{Kid: "k1"}
	for _, n := range []int{1, 400, inlineToken - 1, inlineToken, inlineToken + 1, 2000} {
		tok := strings.Repeat("a", n-1) + "z"
		e := newVerified(tok, 1, "k1", key, &token.Claims{Expiry: 1})
		if !e.is(tok) || !e.is(strings.Clone(tok)) {
			t.Errorf("len %d: entry is not its own token's", n)
		}
		others := []string{tok[:n-1], tok + "a", strings.Repeat("a", n), "z" + tok[1:]}
		if n > inlineToken {
			others = append(others, tok[:inlineToken]+strings.Repeat("b", n-inlineToken))
		}
		for _, o := range others {
			if o != tok && e.is(o) {
				t.Errorf("len %d: entry matches another token of length %d", n, len(o))
			}
		}
	}
}

// Tokens that share their length and tail share a hash (it covers only the tail), and each still
// finds its own entry: the full token is compared.
func TestTokenCacheTailCollisions(t *testing.T) {
	key := &feed.SigningKey{Kid: "k1"}
	c := newTokenCache(64)
	tail := strings.Repeat("s", hashedTail)
	var toks []string
	for i := range ways { // one hash has two sets, which may be one: room for ways entries

		tok := fmt.Sprintf("header-%d.payload.", i) + tail
		toks = append(toks, tok)
		if i > 0 && c.hash(tok) != c.hash(toks[0]) {
			t.Fatal("tokens with the same length and tail hash differently")
		}
		c.put(tok, c.hash(tok), "k1", key, &token.Claims{ID: tok, Expiry: 100}, 0)
	}
	for _, tok := range toks {
		if e := c.get(tok, c.hash(tok), 0); e == nil || e.claims.ID != tok {
			t.Errorf("get(%s) = %v", tok, e)
		}
	}
	if e := c.get("header-9.payload."+tail, c.hash(toks[0]), 0); e != nil {
		t.Errorf("an uncached token with a cached tail found %s", e.claims.ID)
	}
	if c.hash("short") == c.hash("shorter") || c.hash("") == 0 {
		t.Error("short tokens: bad hash")
	}
}
