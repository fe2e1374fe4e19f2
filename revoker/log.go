// Package revoker is the kill switch: the one append-only, gap-free, sequenced feed of revocations,
// blocks, restores and the enforcement changes other services publish. Every append is durable
// before it is acknowledged. The log keeps the feed's materialized enforcement state beside the
// events, so it can validate requests against it and hand out snapshots.
package revoker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/token"
)

const (
	bucketEvents   = "events"   // sequence -> Event
	bucketRequests = "requests" // request id -> sequence
	bucketLog      = "log"      // epoch
)

var keyEpoch = []byte("epoch")

// Schema is the layout of the revoker's store.
var Schema = store.Schema{
	Name:    "revoker",
	Version: 1,
	Buckets: append([]string{bucketEvents, bucketRequests, bucketLog}, feed.Buckets...),
}

// recentEvents is how many of the newest events are kept in memory, so live subscribers never
// read the store.
const recentEvents = 8192

// Config configures a Log.
type Config struct {
	// MaxCredentialTTL is the longest lifetime any credential may have in the deployment. A
	// revoked credential whose expiry the inventory does not know is denylisted for this long.
	MaxCredentialTTL time.Duration
	// RetentionMargin is how much longer than MaxCredentialTTL events are kept before Compact
	// deletes them, for clock differences and credentials in flight; default
	// DefaultRetentionMargin.
	RetentionMargin time.Duration
	// CompactEvery is how often RunCompaction compacts; default DefaultCompactEvery.
	CompactEvery time.Duration
	// Credentials looks revoked credentials up in the issuer's inventory; optional.
	Credentials CredentialLookup
	// Inventory counts live credentials for dry runs (BlastRadius); optional.
	Inventory Inventory
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// Logger receives operational logs; defaults to slog.Default().
	Logger *slog.Logger
}

// CredentialLookup finds a credential in the inventory, so that its revocation is kept exactly as
// long as the credential could be valid.
type CredentialLookup interface {
	// Credential returns the credential's expiry and partner. found is false if the inventory does
	// not know the jti.
	Credential(ctx context.Context, jti string) (expires time.Time, partnerID string, found bool, err error)
}

// Log is the revoker's feed.
type Log struct {
	cfg   Config
	st    store.Store
	epoch string

	// queueMu guards the group commit's queue and whether a caller leads it (commit.go).
	queueMu   sync.Mutex
	queue     []*op
	leading   bool
	lastBatch atomic.Int64  // how many requests the last batch carried
	batches   atomic.Uint64 // how many batches were committed, for benchmarks

	mu       sync.Mutex // serializes commits and compaction
	state    atomic.Pointer[feed.State]
	retained atomic.Uint64 // see RetainedAfter
	replaced atomic.Bool   // the store was replaced under the log: appends are refused (follow.go)

	recentMu sync.RWMutex
	recent   []*treatyv1.Event // the newest events, oldest first, contiguous up to the head

	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced after every append
}

// Open opens the log kept in st, creating a new epoch if the store is new.
func Open(st store.Store, cfg Config) (*Log, error) {
	if cfg.MaxCredentialTTL <= 0 {
		cfg.MaxCredentialTTL = token.DefaultMaxLifetime
	}
	if cfg.RetentionMargin <= 0 {
		cfg.RetentionMargin = DefaultRetentionMargin
	}
	if cfg.CompactEvery <= 0 {
		cfg.CompactEvery = DefaultCompactEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Log{cfg: cfg, st: st, notify: make(chan struct{})}
	var state *feed.State
	err := st.Update(func(tx store.Tx) error {
		epoch := string(tx.Get(bucketLog, keyEpoch))
		if epoch == "" {
			epoch = newEpoch()
			if err := tx.Put(bucketLog, keyEpoch, []byte(epoch)); err != nil {
				return err
			}
			if err := feed.SaveAll(tx, feed.Empty(epoch)); err != nil {
				return err
			}
		}
		l.epoch = epoch
		l.retained.Store(store.KeyUint64(tx.Get(bucketLog, keyRetainedAfter)))
		var err error
		state, err = feed.Load(tx)
		if err != nil {
			return err
		}
		// The state is saved in the same transaction as each append, so it can never lag the log.
		if k, _ := tx.Last(bucketEvents); store.KeyUint64(k) != state.Sequence() {
			return fmt.Errorf("revoker: materialized state is at %d but the log at %d", state.Sequence(), store.KeyUint64(k))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open revocation log: %w", err)
	}
	l.state.Store(state)
	return l, nil
}

// Epoch returns the log's epoch: a random id chosen when the log was created.
func (l *Log) Epoch() string { return l.epoch }

// Head returns the highest sequence appended.
func (l *Log) Head() uint64 { return l.state.Load().Sequence() }

// State returns the materialized enforcement state at the head.
func (l *Log) State() *feed.State { return l.state.Load() }

// Changed returns a channel that is closed at the next append. Take it before reading, so that no
// append between the read and the wait is missed.
func (l *Log) Changed() <-chan struct{} {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	return l.notify
}

// Read returns up to max events with sequences greater than after, in order. The events are
// shared: callers must not modify them. An after below RetainedAfter is OUT_OF_RANGE: those
// events were compacted, and the reader must resync from a snapshot.
func (l *Log) Read(after uint64, max int) ([]*treatyv1.Event, error) {
	if after >= l.Head() {
		return nil, nil
	}
	if retained := l.RetainedAfter(); after < retained {
		return nil, outOfRange(after, retained)
	}
	l.recentMu.RLock()
	recent := l.recent
	l.recentMu.RUnlock()
	if len(recent) > 0 && after+1 >= recent[0].GetSequence() {
		i := int(after + 1 - recent[0].GetSequence())
		if i >= len(recent) {
			return nil, nil
		}
		return recent[i:min(len(recent), i+max)], nil
	}
	var out []*treatyv1.Event
	err := l.st.View(func(tx store.Tx) error {
		return tx.Scan(bucketEvents, nil, store.Uint64Key(after+1), func(_, v []byte) (bool, error) {
			ev := new(treatyv1.Event)
			if err := proto.Unmarshal(v, ev); err != nil {
				return false, err
			}
			out = append(out, ev)
			return len(out) < max, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read revocation log after %d: %w", after, err)
	}
	if len(out) > 0 && out[0].GetSequence() != after+1 {
		return nil, outOfRange(after, l.RetainedAfter()) // compacted while we read
	}
	return out, nil
}
