package access

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// Refusal is one refused call: who tried (if known), how, what, and why it was refused.
type Refusal struct {
	// Sequence numbers refusals in the order they were written, from 1; set by the writer.
	Sequence uint64
	Time     time.Time
	// Caller is the authenticated identity's name, or "" when the caller could not be
	// authenticated.
	Caller string
	// Via is how the caller tried to authenticate: ViaToken, ViaCertificate, ViaInternal, or ""
	// when it presented nothing.
	Via string
	// Method is what was called: a full gRPC method name, or "HTTP <method> <path>".
	Method string
	// Code is the refusal's status: "UNAUTHENTICATED" or "PERMISSION_DENIED".
	Code string
	// Reason says why, as the caller was told.
	Reason string
	// Peer is the caller's network address.
	Peer string
}

// Limits of the refusal log.
const (
	// RefusalQueue is how many refusals may wait for the writer; more are dropped and counted.
	RefusalQueue = 4096
	// refusalBatch is the most refusals written in one transaction (one fsync).
	refusalBatch = 512
	// maxRefusalPrune is the most old refusals one transaction deletes.
	maxRefusalPrune = 2 * refusalBatch
	// maxRefusalTxnBytes bounds the refusals written in one transaction, well under etcd's
	// default --max-request-bytes (1.5 MiB): a refusal's fields are bounded (maxRefusalText)
	// but a batch of the largest would not be.
	maxRefusalTxnBytes = 512 << 10
	// MaxRefusals is how many refusals are kept; older ones are deleted as new ones come.
	MaxRefusals = 100_000
	// DropWarnInterval is the least time between two warnings about dropped refusals.
	DropWarnInterval = time.Minute
	// MaxRefusalPage bounds one read of the refusal log.
	MaxRefusalPage = 1000
	// maxRefusalText bounds each free-text field of a refusal as stored.
	maxRefusalText = 512
)

// maxRefusals is MaxRefusals, lowered by tests.
var maxRefusals uint64 = MaxRefusals

type refusalRecord struct {
	Time   time.Time `json:"time"`
	Caller string    `json:"caller,omitempty"`
	Via    string    `json:"via,omitempty"`
	Method string    `json:"method"`
	Code   string    `json:"code"`
	Reason string    `json:"reason,omitempty"`
	Peer   string    `json:"peer,omitempty"`
}

// refusalQueue is the bounded queue in front of the refusal writer.
type refusalQueue struct {
	ch       chan Refusal
	done     chan struct{} // closed by stop: the writer drains ch and ends
	stopped  chan struct{} // closed when the writer has ended
	stopOnce sync.Once

	dropped   atomic.Uint64 // refusals dropped since the last warning
	lastWarn  atomic.Int64  // unix nanoseconds of the last warning
	totalDrop atomic.Uint64
}

func (q *refusalQueue) start(a *Access) {
	q.ch = make(chan Refusal, RefusalQueue)
	q.done = make(chan struct{})
	q.stopped = make(chan struct{})
	go a.writeRefusals()
}

func (q *refusalQueue) stop() {
	q.stopOnce.Do(func() { close(q.done) })
	<-q.stopped
}

// RecordRefusal queues r for the refusal log and returns at once: a refusal never waits on the
// disk. When the queue is full r is dropped and counted (see DroppedRefusals), with a warning
// at most once per DropWarnInterval.
func (a *Access) RecordRefusal(r Refusal) {
	q := &a.refusals
	select {
	case <-q.done:
		return // closed: nothing writes any more
	default:
	}
	if r.Time.IsZero() {
		r.Time = a.now()
	}
	select {
	case q.ch <- r:
	default:
		q.totalDrop.Add(1)
		n := q.dropped.Add(1)
		now := time.Now().UnixNano()
		last := q.lastWarn.Load()
		if now-last >= int64(DropWarnInterval) && q.lastWarn.CompareAndSwap(last, now) {
			q.dropped.Add(-n)
			a.log.Warn("refusal log queue full: refusals dropped", "dropped", n, "queue", RefusalQueue)
		}
	}
}

// DroppedRefusals returns how many refusals were dropped because the queue was full, since
// Open.
func (a *Access) DroppedRefusals() uint64 { return a.refusals.totalDrop.Load() }

// writeRefusals writes queued refusals in batches until the queue is stopped, then writes what
// is left.
func (a *Access) writeRefusals() {
	q := &a.refusals
	defer close(q.stopped)
	batch := make([]Refusal, 0, refusalBatch)
	for {
		var closing bool
		select {
		case r := <-q.ch:
			batch = append(batch[:0], r)
		case <-q.done:
			closing = true
			batch = batch[:0]
		}
		// Take what else is waiting, without waiting for more: under a flood batches grow by
		// themselves while the previous one is being fsync'd.
	fill:
		for len(batch) < refusalBatch {
			select {
			case r := <-q.ch:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		if len(batch) > 0 {
			a.storeRefusals(batch)
		}
		if closing && len(batch) == 0 {
			return
		}
	}
}

// storeRefusals appends batch to the log and trims the log to MaxRefusals, in one transaction
// per chunk of at most maxRefusalTxnBytes. A failure is logged: refusals are evidence, but the
// calls were refused whatever happens here.
func (a *Access) storeRefusals(batch []Refusal) {
	vals := make([][]byte, 0, len(batch))
	for _, r := range batch {
		val, err := json.Marshal(refusalRecord{
			Time: r.Time.UTC(), Caller: cut(r.Caller), Via: cut(r.Via), Method: cut(r.Method), Code: cut(r.Code),
			Reason: cut(r.Reason), Peer: cut(r.Peer),
		})
		if err != nil {
			a.log.Error("refusal not recorded", "err", err)
			continue
		}
		vals = append(vals, val)
	}
	for len(vals) > 0 {
		n, size := 0, 0
		for n < len(vals) && (n == 0 || size+len(vals[n]) <= maxRefusalTxnBytes) {
			size += len(vals[n])
			n++
		}
		if err := a.refusalSt.Update(func(tx store.Tx) error { return appendRefusals(tx, vals[:n]) }); err != nil {
			a.log.Error("refusals not recorded", "count", n, "err", err)
		}
		vals = vals[n:]
	}
}

// appendRefusals writes vals after the log's last refusal and deletes the oldest beyond
// MaxRefusals, at most maxRefusalPrune of them.
//
// The next sequence is read from the store in the transaction (Last), never kept in memory:
// with a store several replicas share, another replica may have appended since, and reading the
// last key makes this transaction conflict with any append committed before it, so it runs
// again above it instead of overwriting it.
//
// One transaction writes at most refusalBatch puts and maxRefusalPrune deletions (plus the
// bucket's delete marker in etcd): 1,537 operations, well within etcdstore.RequiredTxnOps. In the
// steady state each batch deletes as many as it adds; a log left longer than MaxRefusals (the
// limit lowered) shrinks by up to maxRefusalPrune a batch.
func appendRefusals(tx store.Tx, vals [][]byte) error {
	var next uint64 = 1
	if k, _ := tx.Last(bucketRefusals); k != nil {
		next = store.KeyUint64(k) + 1
	}
	for _, val := range vals {
		if err := tx.Put(bucketRefusals, store.Uint64Key(next), val); err != nil {
			return err
		}
		next++
	}
	last := next - 1
	if last <= maxRefusals {
		return nil
	}
	var old [][]byte
	keepFrom := last - maxRefusals + 1
	if err := tx.Scan(bucketRefusals, nil, nil, func(k, _ []byte) (bool, error) {
		if store.KeyUint64(k) >= keepFrom || len(old) == maxRefusalPrune {
			return false, nil
		}
		old = append(old, append([]byte(nil), k...))
		return true, nil
	}); err != nil {
		return err
	}
	for _, k := range old {
		if err := tx.Delete(bucketRefusals, k); err != nil {
			return err
		}
	}
	return nil
}

// cut bounds a refusal's text field, so a caller cannot make one record large.
func cut(s string) string {
	if len(s) <= maxRefusalText {
		return s
	}
	return s[:maxRefusalText]
}

// Refusals returns up to limit refusals with a sequence above after, oldest first. limit 0 means
// 100; more than MaxRefusalPage is an Invalid error.
func (a *Access) Refusals(after uint64, limit int) ([]Refusal, error) {
	switch {
	case limit < 0 || limit > MaxRefusalPage:
		return nil, fail.Invalidf("page_size", "page_size must be 0-%d", MaxRefusalPage)
	case limit == 0:
		limit = 100
	}
	if after == ^uint64(0) {
		return nil, nil
	}
	var out []Refusal
	err := a.refusalSt.View(func(tx store.Tx) error {
		return tx.Scan(bucketRefusals, nil, store.Uint64Key(after+1), func(k, val []byte) (bool, error) {
			var rec refusalRecord
			if err := json.Unmarshal(val, &rec); err != nil {
				return false, fmt.Errorf("decode refusal: %w", err)
			}
			out = append(out, Refusal{
				Sequence: store.KeyUint64(k), Time: rec.Time, Caller: rec.Caller, Via: rec.Via, Method: rec.Method,
				Code: rec.Code, Reason: rec.Reason, Peer: rec.Peer,
			})
			return len(out) < limit, nil
		})
	})
	return out, err
}
