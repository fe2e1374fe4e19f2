package policy

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cedar-policy/cedar-go/types"
)

// Building a Cedar record costs more than evaluating a short policy set: cedar-go sorts and hashes
// its keys and boxes every value. A decision's context depends on few inputs (the attributes the
// set reads, the source address, the environment and the instant, only as finely as those
// attributes need it), and consecutive decisions mostly share them, so the records are cached.

// ctxKey is everything a context record is built from.
type ctxKey struct {
	keys keyMask
	ip   netip.Addr // the zero Addr unless source_ip is read
	env  string     // empty unless environment is read
	// instant is the clock as finely as the attributes read need it: milliseconds when time
	// is read, else seconds when unix is read, else hours since 1970 when hour or weekday is,
	// else 0.
	instant int64
}

// ctxEntry is one cached record; it is immutable once published.
type ctxEntry struct {
	key ctxKey
	rec types.Record
}

// ctxSlots is the size of the context cache: direct-mapped, each slot holding the last record
// built for the keys that hash to it. A miss costs one record, as without the cache.
const ctxSlots = 256

var (
	ctxCache [ctxSlots]atomic.Pointer[ctxEntry]
	ctxSeed  = maphash.MakeSeed()
)

func (k *ctxKey) slot() uint64 {
	a := k.ip.As16()
	h := maphash.String(ctxSeed, k.env)
	h ^= binary.LittleEndian.Uint64(a[:8]) * 0x9e3779b97f4a7c15
	h ^= binary.LittleEndian.Uint64(a[8:]) * 0xc2b2ae3d27d4eb4f
	h ^= uint64(k.instant)*0x165667b19e3779f9 ^ uint64(k.keys)
	h ^= h >> 32
	h *= 0xd6e8feb86659fd93
	h ^= h >> 32
	return h % ctxSlots
}

// contextRecord returns the context record for k, from the cache when it has it. Records are
// immutable in cedar-go, so sharing one between decisions and goroutines is safe.
func contextRecord(k ctxKey) types.Record {
	slot := &ctxCache[k.slot()]
	if e := slot.Load(); e != nil && e.key == k {
		return e.rec
	}
	k.env = strings.Clone(k.env) // the cache outlives the request the string came from
	e := &ctxEntry{key: k, rec: buildContext(k)}
	slot.Store(e)
	return e.rec
}

// buildContext builds the record from the key alone, so that every instant the key stands for
// gets the same record.
func buildContext(k ctxKey) types.Record {
	m := make(types.RecordMap, 6)
	if k.keys&keySourceIP != 0 && k.ip.IsValid() {
		a := k.ip.Unmap()
		m["source_ip"] = types.IPAddr(netip.PrefixFrom(a, a.BitLen()))
	}
	if k.keys&keyEnvironment != 0 && k.env != "" {
		m["environment"] = types.String(k.env)
	}
	var t time.Time
	switch {
	case k.keys&keyTime != 0:
		t = time.UnixMilli(k.instant)
	case k.keys&keyUnix != 0:
		t = time.Unix(k.instant, 0)
	default:
		t = time.Unix(k.instant*3600, 0)
	}
	utc := t.UTC()
	if k.keys&keyTime != 0 {
		m["time"] = types.NewDatetime(t)
	}
	if k.keys&keyHour != 0 {
		m["hour"] = types.Long(utc.Hour())
	}
	if k.keys&keyWeekday != 0 {
		m["weekday"] = types.Long(utc.Weekday())
	}
	if k.keys&keyUnix != 0 {
		m["unix"] = types.Long(t.Unix())
	}
	return types.NewRecord(m)
}

// floorDiv divides rounding down, so that instants before 1970 fall in the right hour.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// maxCachedParents bounds the workload parent sets one set keeps (one per integration of its
// partner); beyond it they are built per lookup.
const maxCachedParents = 4096

// parents holds the parent sets of a set's partner's entities, built on first use and shared by
// every copy of the set (WithID). A workload's parents are its integration and partner: the same
// set for every workload of an integration.
type parents struct {
	partner     string
	integration types.EntityUIDSet // an integration's parents: its partner

	mu        sync.Mutex                                    // serializes writers of workloads
	workloads atomic.Pointer[map[string]types.EntityUIDSet] // by integration id; copied on write
}

func newParents(partner string) *parents {
	p := &parents{
		partner:     partner,
		integration: types.NewEntityUIDSet(types.EntityUID{Type: typePartner, ID: types.String(partner)}),
	}
	p.workloads.Store(new(map[string]types.EntityUIDSet))
	return p
}

func workloadParents(partner, integration string) types.EntityUIDSet {
	return types.NewEntityUIDSet(
		types.EntityUID{Type: typeIntegration, ID: types.String(integration)},
		types.EntityUID{Type: typePartner, ID: types.String(partner)},
	)
}

// integrationParents returns the parents of an integration of partner.
func (s *Set) integrationParents(partner string) types.EntityUIDSet {
	if s.parents == nil || partner != s.parents.partner {
		return types.NewEntityUIDSet(types.EntityUID{Type: typePartner, ID: types.String(partner)})
	}
	return s.parents.integration
}

// workloadParents returns the parents of a workload of integration of partner.
func (s *Set) workloadParents(partner, integration string) types.EntityUIDSet {
	p := s.parents
	if p == nil || partner != p.partner {
		return workloadParents(partner, integration)
	}
	if ps, ok := (*p.workloads.Load())[integration]; ok {
		return ps
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.workloads.Load()
	if ps, ok := old[integration]; ok {
		return ps
	}
	if len(old) >= maxCachedParents {
		return workloadParents(partner, integration)
	}
	integration = strings.Clone(integration) // the cache outlives the request the string came from
	ps := workloadParents(p.partner, integration)
	m := make(map[string]types.EntityUIDSet, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[integration] = ps
	p.workloads.Store(&m)
	return ps
}
