package feed

import (
	"hash/maphash"
	"maps"
)

// shards is how many pieces each map of the state is cut into. An edit copies only the pieces it
// touches, so folding one event into a state of 30,000 integrations copies a few hundred entries
// instead of all of them, while readers of the old state see it unchanged.
const shards = 64

var shardSeed = maphash.MakeSeed()

func shardOf(key string) int { return int(maphash.String(shardSeed, key) & (shards - 1)) }

// cowMap is an immutable map from string keys, edited by copying the shards an edit touches.
type cowMap[V any] struct {
	shards [shards]map[string]V
	n      int
}

func (m *cowMap[V]) get(key string) (V, bool) {
	v, ok := m.shards[shardOf(key)][key]
	return v, ok
}

func (m *cowMap[V]) len() int { return m.n }

// each calls fn for every entry, in no particular order, until fn returns false.
func (m *cowMap[V]) each(fn func(key string, v V) bool) {
	for _, sh := range m.shards {
		for k, v := range sh {
			if !fn(k, v) {
				return
			}
		}
	}
}

// cowEdit edits a copy of a cowMap. Shards are copied on first write, so the map being edited must
// itself be a fresh copy of the original's struct (which copies only the shard headers).
type cowEdit[V any] struct {
	m     *cowMap[V]
	owned [shards]bool
}

func (e *cowEdit[V]) own(i int) map[string]V {
	if !e.owned[i] {
		if e.m.shards[i] == nil {
			e.m.shards[i] = make(map[string]V)
		} else {
			e.m.shards[i] = maps.Clone(e.m.shards[i])
		}
		e.owned[i] = true
	}
	return e.m.shards[i]
}

func (e *cowEdit[V]) set(key string, v V) {
	sh := e.own(shardOf(key))
	if _, had := sh[key]; !had {
		e.m.n++
	}
	sh[key] = v
}

func (e *cowEdit[V]) delete(key string) {
	i := shardOf(key)
	if _, had := e.m.shards[i][key]; !had {
		return
	}
	delete(e.own(i), key)
	e.m.n--
}
