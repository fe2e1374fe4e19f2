package issuertest

import (
	"sync/atomic"
	"time"
)

// Clock is a settable clock for the issuer under test: real time plus an offset. Only the issuer
// runs on it; the registry and the PDP keep real time, which is how a test makes the issuer alone
// see a contract end or an expiry.
type Clock struct{ offset atomic.Int64 }

// Now returns real time plus the offset.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Reset returns the clock to real time.
func (c *Clock) Reset() { c.offset.Store(0) }
