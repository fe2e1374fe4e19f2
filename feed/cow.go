package feed

import (
	"hash/maphash"
	"maps"
)

// A map of the state is cut into groups of leaves, 4,096 leaves in all, addressed by a hash of
// the key. An edit copies only the leaves it touches (and the small arrays of the groups that hold
// them), so folding a batch of 50 revocations into a state that denylists 100,000 credentials
// copies about 1,200 entries instead of all of them, while readers of the old state see it
// unchanged. Copying a State copies only the group pointers.
const (
	groupBits = 6
	groups    = 1 << groupBits
	leaves    = 64
)

var shardSeed = maphash.MakeSeed()

// shardOf returns the group and the leaf of key.
func shardOf(key string) (g, l int) {
	h := maphash.String(shardSeed, key)
	return int(h & (groups - 1)), int(h>>groupBits) & (leaves - 1)
}

// group is one group's leaves; a nil leaf is empty.
type group[V any] [leaves]map[string]V

// cowMap is an immutable map from string keys, edited by copying the leaves an edit touches.
type cowMap[V any] struct {
	groups [groups]*group[V]
	n      int
}

func (m *cowMap[V]) get(key string) (V, bool) {
	g, l := shardOf(key)
	if m.groups[g] == nil {
		var zero V
		return zero, false
	}
	v, ok := m.groups[g][l][key]
	return v, ok
}

func (m *cowMap[V]) len() int { return m.n }

// each calls fn for every entry, in no particular order, until fn returns false.
func (m *cowMap[V]) each(fn func(key string, v V) bool) {
	for _, g := range m.groups {
		if g == nil {
			continue
		}
		for _, leaf := range g {
			for k, v := range leaf {
				if !fn(k, v) {
					return
				}
			}
		}
	}
}

// cowEdit edits a copy of a cowMap. Groups and leaves are copied on first write, so the map being
// edited must itself be a fresh copy of the original's struct (which copies only group pointers).
type cowEdit[V any] struct {
	m          *cowMap[V]
	ownedGroup [groups]bool
	ownedLeaf  [groups]uint64 // bit l of ownedLeaf[g]: leaf l of group g is this edit's copy
}

func (e *cowEdit[V]) own(g, l int) map[string]V {
	if !e.ownedGroup[g] {
		ng := new(group[V])
		if old := e.m.groups[g]; old != nil {
			*ng = *old
		}
		e.m.groups[g] = ng
		e.ownedGroup[g] = true
	}
	grp := e.m.groups[g]
	if e.ownedLeaf[g]&(1<<l) == 0 {
		if grp[l] == nil {
			grp[l] = make(map[string]V)
		} else {
			grp[l] = maps.Clone(grp[l])
		}
		e.ownedLeaf[g] |= 1 << l
	}
	return grp[l]
}

func (e *cowEdit[V]) set(key string, v V) {
	sh := e.own(shardOf(key))
	if _, had := sh[key]; !had {
		e.m.n++
	}
	sh[key] = v
}

func (e *cowEdit[V]) delete(key string) {
	if _, had := e.m.get(key); !had {
		return
	}
	delete(e.own(shardOf(key)), key)
	e.m.n--
}
