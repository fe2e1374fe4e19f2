package pdp

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"

	"github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/token"
)

// BenchmarkTokenCache compares cache layouts on the reference load: 100,000 distinct
// 400-byte tokens, looked up in an order with no locality (a prime stride). Each lookup returns
// the verified entry, the full token compared. Layouts: this package's set-associative table
// keyed by a 64-bit maphash; an immutable Go map keyed by the token (the reference
// handler); the same map behind a RWMutex (a mutable cache's read side); a sync.Map.
func BenchmarkTokenCache(b *testing.B) {
	const n = 100_000
	toks := make([]string, n)
	entries := make([]*verified, n)
	key := &feed.SigningKey{Kid: "k1"}
	for i := range toks {
		raw := make([]byte, 300)
		rand.Read(raw)
		toks[i] = base64.RawURLEncoding.EncodeToString(raw) // 400 bytes
		entries[i] = newVerified(toks[i], 0, "k1", key, &token.Claims{ID: fmt.Sprint(i), Expiry: 1 << 40})
	}
	// Lookups use copies of the tokens, as a request decoded from the wire would.
	queries := make([]string, n)
	for i, t := range toks {
		queries[i] = string([]byte(t))
	}
	const stride = 7919

	b.Run("set-associative", func(b *testing.B) {
		// Half full: near its bound the table evicts by expiry (0.7% of 100,000 tokens at 75%
		// load), and this benchmark is about hits.
		c := newTokenCache(2 * n)
		for i, t := range toks {
			c.put(t, c.hash(t), "k1", key, &entries[i].claims, 0)
		}
		if c.len() != n {
			b.Fatalf("cache holds %d of %d", c.len(), n)
		}
		i := 0
		for b.Loop() {
			q := queries[i%n]
			if c.get(q, c.hash(q), 1) == nil {
				b.Fatal("miss")
			}
			i += stride
		}
	})
	b.Run("map-string", func(b *testing.B) {
		m := make(map[string]*verified, n)
		for i, t := range toks {
			m[t] = entries[i]
		}
		i := 0
		for b.Loop() {
			if e := m[queries[i%n]]; e == nil || e.exp <= 1 {
				b.Fatal("miss")
			}
			i += stride
		}
	})
	b.Run("map-string-rwmutex", func(b *testing.B) {
		var mu sync.RWMutex
		m := make(map[string]*verified, n)
		for i, t := range toks {
			m[t] = entries[i]
		}
		i := 0
		for b.Loop() {
			mu.RLock()
			e := m[queries[i%n]]
			mu.RUnlock()
			if e == nil || e.exp <= 1 {
				b.Fatal("miss")
			}
			i += stride
		}
	})
	b.Run("sync-map", func(b *testing.B) {
		var m sync.Map
		for i, t := range toks {
			m.Store(t, entries[i])
		}
		i := 0
		for b.Loop() {
			if e, ok := m.Load(queries[i%n]); !ok || e.(*verified).exp <= 1 {
				b.Fatal("miss")
			}
			i += stride
		}
	})
}
