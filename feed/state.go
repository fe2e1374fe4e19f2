// Package feed defines what the revoker's sequenced feed means: the enforcement state that its
// events fold into, how each event changes that state, and how the state is stored and exchanged.
// The revoker folds its own log into a State to validate kill-switch requests and answer snapshots;
// every PDP folds the same events into the State it decides on. Both use this one definition.
//
// A State is immutable. Editing one yields a new State that shares everything it did not change, so
// a PDP can swap it in atomically while readers keep using the old one.
package feed

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// Block is a kill-switch block in force on a workload, integration or partner.
type Block struct {
	// Sequence is the feed sequence of the event that set the block.
	Sequence uint64
	// Permanent blocks (offboarding) can never be restored.
	Permanent bool
	// Reason is the reason recorded with the block.
	Reason string
	// Lifecycle and Operator say who holds the block: the registry's lifecycle (a suspension) or
	// an operator's kill switch. A reactivation releases only the lifecycle's hold, so it never
	// undoes an operator's block; the block stays in force while either holds it.
	Lifecycle, Operator bool
}

// Control is the kill-switch state of a workload, integration or partner.
type Control struct {
	// Block is the block in force, or nil.
	Block *Block
	// Watermark is the sequence of the last restore: credentials under the entity are valid only if
	// their tsq is at or after it.
	Watermark uint64
}

// Partner is a partner as enforcement sees it.
type Partner struct {
	ID    string
	State treatyv1.PartnerState
	// ContractEnd is the instant access ends; zero if no partner record arrived yet.
	ContractEnd time.Time
	Control
}

// Integration is an integration as enforcement sees it.
type Integration struct {
	ID            string
	PartnerID     string
	State         treatyv1.IntegrationState
	AllowedScopes []string
	Audiences     []string
	MaxTTL        time.Duration
	// Environment is the one environment its credentials are valid in; "" (an integration from
	// before environments) matches any.
	Environment string
	// SourceRanges, if not empty, are the only source addresses its credentials may be used from.
	SourceRanges []netip.Prefix
	Control
}

// AllowsSource reports whether a request from addr may use the integration's credentials: any
// address when it has no source ranges, else only an address inside one (an unknown address is
// outside every range).
func (i *Integration) AllowsSource(addr netip.Addr) bool {
	if len(i.SourceRanges) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, p := range i.SourceRanges {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// parseRanges parses the CIDR source ranges of an IntegrationChanged event; one that does not
// parse (the registry never publishes one) becomes an empty prefix that contains nothing, so the
// integration fails closed.
func parseRanges(ranges []string) []netip.Prefix {
	if len(ranges) == 0 {
		return nil
	}
	out := make([]netip.Prefix, len(ranges))
	for n, r := range ranges {
		p, err := netip.ParsePrefix(r)
		if err == nil {
			out[n] = p.Masked()
		}
	}
	return out
}

// rangeStrings renders source ranges as CIDR strings.
func rangeStrings(ranges []netip.Prefix) []string {
	if len(ranges) == 0 {
		return nil
	}
	out := make([]string, len(ranges))
	for n, p := range ranges {
		out[n] = p.String()
	}
	return out
}

// AllowsScope reports whether scope is inside the integration's ceiling.
func (i *Integration) AllowsScope(scope string) bool { return slices.Contains(i.AllowedScopes, scope) }

// AllowsAudience reports whether the integration lists audience.
func (i *Integration) AllowsAudience(aud string) bool { return slices.Contains(i.Audiences, aud) }

// Workload is a workload as enforcement sees it.
type Workload struct {
	ID            string
	IntegrationID string
	PartnerID     string
	State         treatyv1.WorkloadState
	Control
}

// SigningKey is an issuer signing key published into the feed.
type SigningKey struct {
	Kid       string
	Algorithm string
	Issuer    string
	// JWK is the public key as published (a JSON Web Key).
	JWK []byte
	// Public is the parsed public key, or nil if the published JWK could not be parsed (a token
	// signed with such a key can never verify).
	Public any
	// RevokedSequence is the sequence at which the key was revoked, or zero.
	RevokedSequence uint64
}

// Revoked reports whether the key was revoked.
func (k *SigningKey) Revoked() bool { return k.RevokedSequence != 0 }

// RevokedCredential is one denylisted credential.
type RevokedCredential struct {
	JTI string
	// Expires is when the entry may be forgotten: the credential cannot be valid after it anyway.
	Expires   time.Time
	Sequence  uint64
	PartnerID string
}

// State is the enforcement state after folding every event of a feed up to Sequence. It is
// immutable; use Edit to derive a new one.
type State struct {
	id           uint64 // see ID
	epoch        string
	seq          uint64
	partners     cowMap[*Partner]
	integrations cowMap[*Integration]
	workloads    cowMap[*Workload]
	keys         cowMap[*SigningKey]
	revoked      cowMap[*RevokedCredential]
	policies     cowMap[*Policies]
	// global is the break-glass watermark: credentials with a tsq below it are revoked. globalSeq
	// is the sequence of the event that set it (kept in a store's meta bucket, not in Proto).
	global, globalSeq uint64
}

// Empty returns the state of a feed with no events, for the given epoch.
func Empty(epoch string) *State { return &State{id: nextStateID(), epoch: epoch} }

// stateIDs numbers the States a process makes.
var stateIDs atomic.Uint64

func nextStateID() uint64 { return stateIDs.Add(1) }

// ID returns a number that identifies this State value within the process: no two States made by
// a process share one, and none is zero. A cache of facts derived from a state can remember the
// state's ID instead of a pointer to it: the ID tells whether the facts still hold for the state at
// hand without keeping an old state alive (a pointer could, and could be reused once freed).
func (s *State) ID() uint64 { return s.id }

// Epoch returns the epoch of the feed the state was built from.
func (s *State) Epoch() string { return s.epoch }

// Sequence returns the last sequence folded into the state.
func (s *State) Sequence() uint64 { return s.seq }

// GlobalWatermark returns the break-glass watermark: every credential with a tsq below it is
// revoked, whatever it is for. It is zero until a GlobalWatermark event sets it, and only rises.
func (s *State) GlobalWatermark() uint64 { return s.global }

// GlobalWatermarkSequence returns the sequence of the event that set the global watermark, or zero.
// A State built by FromProto does not know it (a snapshot does not carry it) and returns zero.
func (s *State) GlobalWatermarkSequence() uint64 { return s.globalSeq }

// Partner returns the partner with the given id.
func (s *State) Partner(id string) (*Partner, bool) { return s.partners.get(id) }

// Integration returns the integration with the given id.
func (s *State) Integration(id string) (*Integration, bool) { return s.integrations.get(id) }

// Workload returns the workload with the given id.
func (s *State) Workload(id string) (*Workload, bool) { return s.workloads.get(id) }

// SigningKey returns the signing key with the given kid.
func (s *State) SigningKey(kid string) (*SigningKey, bool) { return s.keys.get(kid) }

// RevokedCredential returns the revocation of the credential with the given jti.
func (s *State) RevokedCredential(jti string) (*RevokedCredential, bool) { return s.revoked.get(jti) }

// Control returns the kill-switch state of a workload, integration or partner, and whether the
// feed knows that entity.
func (s *State) Control(kind treatyv1.TargetKind, id string) (Control, bool) {
	switch kind {
	case treatyv1.TargetKind_TARGET_KIND_PARTNER:
		if p, ok := s.partners.get(id); ok {
			return p.Control, true
		}
	case treatyv1.TargetKind_TARGET_KIND_INTEGRATION:
		if i, ok := s.integrations.get(id); ok {
			return i.Control, true
		}
	case treatyv1.TargetKind_TARGET_KIND_WORKLOAD:
		if w, ok := s.workloads.get(id); ok {
			return w.Control, true
		}
	}
	return Control{}, false
}

// Counts reports how many entities of each kind the state holds, for logs and metrics.
func (s *State) Counts() (partners, integrations, workloads, keys, revoked int) {
	return s.partners.len(), s.integrations.len(), s.workloads.len(), s.keys.len(), s.revoked.len()
}

// EachWorkload calls fn for every workload record, in no particular order, until it returns false.
func (s *State) EachWorkload(fn func(*Workload) bool) {
	s.workloads.each(func(_ string, w *Workload) bool { return fn(w) })
}

// EachSigningKey calls fn for every signing key until it returns false.
func (s *State) EachSigningKey(fn func(*SigningKey) bool) {
	s.keys.each(func(_ string, k *SigningKey) bool { return fn(k) })
}
