package decisionlog

import (
	"strings"
	"sync"
)

// maxInterned bounds the interner: enforcement points send a few hundred distinct actions and
// resources (their scopes and audiences), and a caller sending junk cannot grow it past this.
const maxInterned = 4096

// interner hands out one copy of each action and resource the log keeps, so that an entry neither
// allocates for them nor points into the request's memory. The gRPC server decodes both in place,
// inside the frame that also holds the token (pdpsvc.ServerCodec); holding them as they are would
// keep that frame, token included, in memory for as long as the entry is queued, batched or tailed.
// Past maxInterned strings, each entry gets its own copy.
type interner struct {
	mu      sync.RWMutex
	strings map[string]string
}

// get returns s's shared copy, making it on first sight.
func (in *interner) get(s string) string {
	in.mu.RLock()
	c, ok := in.strings[s]
	in.mu.RUnlock()
	if ok {
		return c
	}
	c = strings.Clone(s)
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.strings == nil {
		in.strings = make(map[string]string)
	}
	if len(in.strings) < maxInterned {
		in.strings[c] = c
	}
	return c
}
