package pdp

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
)

// idSource hands out decision ids: a random 64-bit prefix chosen when the PDP starts, followed by
// a 64-bit counter, as 32 hex digits. Ids are unique within a process by the counter and across
// processes and restarts by the prefix (a collision needs two PDPs drawing the same 64 random
// bits), and cost one atomic add instead of a read from the system's random source. They are
// identifiers for the audit trail, not secrets: they are predictable by design.
type idSource struct {
	prefix [8]byte
	n      atomic.Uint64
}

func (s *idSource) init() { rand.Read(s.prefix[:]) }

func (s *idSource) next() string {
	var raw [16]byte
	copy(raw[:8], s.prefix[:])
	binary.BigEndian.PutUint64(raw[8:], s.n.Add(1))
	var out [32]byte
	hex.Encode(out[:], raw[:])
	return string(out[:])
}
