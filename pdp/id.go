package pdp

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
)

// DecisionID identifies a decision in the audit trail: a random 64-bit prefix chosen when the PDP
// starts, followed by a 64-bit counter. It is a fixed-size value, not a string, so that deciding
// allocates nothing; String (or MarshalText) renders it as 32 lowercase hex digits at the edge.
type DecisionID [16]byte

// String returns the id as 32 lowercase hex digits.
func (id DecisionID) String() string {
	var out [32]byte
	hex.Encode(out[:], id[:])
	return string(out[:])
}

// AppendText appends the id's 32 hex digits to b, for encoders that can write without allocating.
func (id DecisionID) AppendText(b []byte) ([]byte, error) { return hex.AppendEncode(b, id[:]), nil }

// MarshalText renders the id as 32 hex digits, so that JSON and slog show it as a string.
func (id DecisionID) MarshalText() ([]byte, error) { return id.AppendText(make([]byte, 0, 32)) }

// IsZero reports whether the id is unset (no decision has a zero id: the counter starts at 1).
func (id DecisionID) IsZero() bool { return id == DecisionID{} }

// idSource hands out decision ids. Ids are unique within a process by the counter and across
// processes and restarts by the prefix (a collision needs two PDPs drawing the same 64 random
// bits), and cost one atomic add instead of a read from the system's random source. They are
// identifiers for the audit trail, not secrets: they are predictable by design.
type idSource struct {
	prefix [8]byte
	n      atomic.Uint64
}

func (s *idSource) init() { rand.Read(s.prefix[:]) }

func (s *idSource) next() DecisionID {
	var id DecisionID
	copy(id[:8], s.prefix[:])
	binary.BigEndian.PutUint64(id[8:], s.n.Add(1))
	return id
}
