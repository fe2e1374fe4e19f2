package decisionlog

import (
	"context"
	"fmt"
	"sync"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// MaxBacklog bounds the entries a tail replays before the live ones.
const MaxBacklog = 1000

// Errors that end a tail.
var (
	// ErrTooSlow ends a tail that fell more than Config.TailBuffer entries behind: the log never
	// waits for a reader.
	ErrTooSlow = fail.Unavailablef(nil, "the decision tail fell too far behind and was cut off; reconnect, or list the decisions missed")
	// ErrClosed ends a tail when the log closes, and refuses new ones after.
	ErrClosed = fail.Unavailablef(nil, "the decision log is closing")
	// errUnsubscribed is what Next returns after the subscriber's own Close.
	errUnsubscribed = fail.Unavailablef(nil, "the decision tail was closed")
)

// tailHub fans written entries out to subscribers, each with a bounded buffer.
type tailHub struct {
	mu        sync.Mutex
	buffer    int
	published uint64 // the last sequence handed to subscribers
	subs      map[*Tail]struct{}
	closed    bool
}

func (h *tailHub) init(buffer int, published uint64) {
	h.buffer, h.published, h.subs = buffer, published, map[*Tail]struct{}{}
}

// publish hands committed entries to every subscriber, cutting off any whose buffer is full.
func (h *tailHub) publish(entries []Entry, last uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.published = last
	for t := range h.subs {
		for i := range entries {
			select {
			case t.c <- entries[i]:
			default:
				h.end(t, ErrTooSlow)
			}
			if t.err != nil {
				break
			}
		}
	}
}

// end disconnects t with err; h.mu is held.
func (h *tailHub) end(t *Tail, err error) {
	if _, ok := h.subs[t]; !ok {
		return
	}
	delete(h.subs, t)
	t.err = err
	close(t.c)
}

func (h *tailHub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for t := range h.subs {
		h.end(t, ErrClosed)
	}
}

// Tail is a live view of the log: the latest entries asked for, then every entry as it is
// written. It is for one reader.
type Tail struct {
	hub     *tailHub
	backlog []Entry
	c       chan Entry
	err     error // why c was closed; written before the close
}

// Tail starts a live tail that first yields the latest backlog entries (at most MaxBacklog)
// already written. It returns ErrClosed after Close.
func (l *Log) Tail(backlog int) (*Tail, error) {
	backlog = min(max(backlog, 0), MaxBacklog)
	h := &l.tail
	t := &Tail{hub: h, c: make(chan Entry, h.buffer)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	h.subs[t] = struct{}{}
	upTo := h.published // entries after it reach t through c
	h.mu.Unlock()
	if backlog == 0 || upTo == 0 {
		return t, nil
	}
	from := uint64(1)
	if upTo > uint64(backlog) {
		from = upTo - uint64(backlog) + 1
	}
	err := l.store.View(func(tx store.Tx) error {
		return tx.Scan(recordsBucket, nil, store.Uint64Key(from), func(k, v []byte) (bool, error) {
			if store.KeyUint64(k) > upTo {
				return false, nil
			}
			e, err := decode(v)
			if err != nil {
				return false, err
			}
			t.backlog = append(t.backlog, e)
			return true, nil
		})
	})
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("decisionlog: read the tail's backlog: %w", err)
	}
	return t, nil
}

// Next returns the next entry: from the backlog, then live. It returns ErrTooSlow if the tail
// fell behind, ErrClosed if the log closed, or ctx's error.
func (t *Tail) Next(ctx context.Context) (Entry, error) {
	if len(t.backlog) > 0 {
		e := t.backlog[0]
		t.backlog = t.backlog[1:]
		return e, nil
	}
	select {
	case e, ok := <-t.c:
		if !ok {
			return Entry{}, t.err
		}
		return e, nil
	case <-ctx.Done():
		return Entry{}, ctx.Err()
	}
}

// Close ends the tail. It is safe to call more than once, and after the log closed.
func (t *Tail) Close() {
	t.hub.mu.Lock()
	defer t.hub.mu.Unlock()
	t.hub.end(t, errUnsubscribed)
}
