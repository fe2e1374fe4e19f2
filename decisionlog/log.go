// Package decisionlog is the PDP's append-only decision log. It implements pdp.Recorder: Record
// runs on the decision path, so it only copies a decision's fields into a bounded in-memory queue,
// and one writer goroutine commits them in batches to the log's own bbolt store, indexed by
// subject and by time, and fans them out to live tails.
//
// The log never drops a decision silently:
//   - Sampling keeps a configured share of allows, chosen by a counter (see Config.AllowSampleRate),
//     and every deny. Allows left out are counted (Stats.SampledOut). An optional bound on the
//     allows kept per second (Config.MaxAllowsPerSecond) leaves out, and counts (Stats.Capped),
//     the allows of a flood; denies are never bounded.
//   - When the queue is full, a deny waits for room (backpressure): a slow disk makes denies
//     slow, not lost. The wait is bounded (Config.MaxDenyWait), because a full or stuck disk
//     would otherwise hold every deny's answer for as long as it lasts: a deny that waited that
//     long is answered without an entry, counted (Stats.Unlogged) and reported at error level.
//     So does a flood of denies the disk cannot keep up with (bad tokens sent as fast as the
//     PDP answers them): past the bound its denies are counted, not logged. A negative
//     MaxDenyWait waits without bound instead, for deployments that would rather answer denies
//     late than leave one out. An allow is not waited for: it is left out and counted
//     (Stats.Shed), so a slow disk never slows the allows that make up most traffic.
//   - Close writes everything queued, fsync'd, before it returns; a decision recorded after
//     Close is counted (Stats.AfterClose).
package decisionlog

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/store"
)

// Defaults for Config fields left zero.
const (
	DefaultQueueSize         = 8192
	DefaultBatchSize         = 1024
	DefaultCommitInterval    = 100 * time.Millisecond
	DefaultMaxAge            = 7 * 24 * time.Hour
	DefaultMaxRecords        = 1_000_000
	DefaultRetentionInterval = time.Minute
	DefaultTailBuffer        = 1024
	DefaultMaxDenyWait       = time.Second
)

// KeepNoAllows is the AllowSampleRate that leaves every allow out of the log.
const KeepNoAllows = -1

// Config configures a Log.
type Config struct {
	// Store holds the log, opened with Schema. Required. The caller closes it, after Log.Close.
	Store store.Store
	// AllowSampleRate is the share of allows kept, in (0, 1]; zero means 1 (every allow), and a
	// negative value (KeepNoAllows) keeps none. Every deny is kept whatever the rate. The choice is
	// a counter, not a hash: of the first n allows, exactly floor(n × rate) are kept, spread
	// evenly, so the share is exact at any moment and costs one atomic add.
	AllowSampleRate float64
	// MaxAllowsPerSecond, if positive, bounds the allows kept in any one second of the log's
	// clock, after sampling: the allows past it in that second are left out and counted
	// (Stats.Capped). Denies are never capped. Zero or less means no bound (`treaty serve`
	// defaults it to 1,000). Why a bound: under a flood of allows the log's writer costs CPU on
	// the decision path's machine (about 6 us an entry), and with MaxRecords a flood of allows
	// would push the denies, which are the evidence, out of the log within a minute.
	MaxAllowsPerSecond int
	// QueueSize bounds the decisions waiting for the writer; default 8192.
	QueueSize int
	// MaxDenyWait bounds how long a deny waits for room in a full queue before it is answered
	// without an entry (Stats.Unlogged); default one second, several commits of a slow disk;
	// negative waits without bound. The queue is full only when the disk has not kept up for a
	// while (QueueSize decisions), and a disk that is stuck or full stays so for longer than any
	// caller waits for its answer.
	MaxDenyWait time.Duration
	// BatchSize bounds the decisions the writer commits in one transaction; default 1024.
	BatchSize int
	// CommitInterval is the least time between the starts of two commits: a decision arriving
	// sooner after a commit waits for the ones that follow it, so that under load one fsync'd
	// transaction takes many decisions instead of a handful (a commit costs its fsync and its
	// pages whatever it holds). A decision arriving after a quiet spell is committed at once. A
	// full batch never waits. Negative commits as soon as anything is queued.
	//
	// Default 100ms. A commit costs a few hundred microseconds of CPU whatever it holds (two
	// fdatasyncs, the meta and branch pages), so at low rates the interval sets the cost: with 1%
	// of 20,000 allows a second kept, 10ms meant a commit for nearly every entry (100 a second),
	// 100ms means 10. At high rates the batch size triggers first (1,024 entries fill in ~50ms at
	// 20,000 a second), so the interval changes little there. The price: a crash (not Close,
	// which writes everything queued) loses what was queued in the last interval, up to 100ms of
	// decisions instead of 10ms, and live tails see an entry up to 100ms after it was recorded.
	// Nothing waits on the decision path for the interval's sake: once BatchSize decisions are
	// queued the writer commits without waiting, so the queue fills (and denies wait) only when
	// the disk is slower than the decisions, as before.
	CommitInterval time.Duration
	// MaxAge is how long an entry is kept; default 7 days; negative keeps entries whatever their age.
	MaxAge time.Duration
	// MaxRecords bounds the entries kept, the oldest going first; default 1,000,000 (a few hundred
	// MB on disk); negative means no bound.
	MaxRecords int
	// RetentionInterval is how often the writer deletes entries past MaxAge or MaxRecords; default
	// one minute.
	RetentionInterval time.Duration
	// TailBuffer bounds the entries a live tail may fall behind before it is cut off; default 1024.
	TailBuffer int
	// Now returns the time a decision is logged at; defaults to time.Now.
	Now func() time.Time
	// Logger receives operational logs; defaults to slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.MaxDenyWait == 0 {
		c.MaxDenyWait = DefaultMaxDenyWait
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = DefaultCommitInterval
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = DefaultMaxRecords
	}
	if c.RetentionInterval <= 0 {
		c.RetentionInterval = DefaultRetentionInterval
	}
	if c.TailBuffer <= 0 {
		c.TailBuffer = DefaultTailBuffer
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// rateScale is the resolution of AllowSampleRate: parts per million.
const rateScale = 1_000_000

// Log is the decision log. It is safe for concurrent use.
type Log struct {
	cfg   Config
	log   *slog.Logger
	store store.Store
	ppm   uint64 // allows kept per million: rateScale keeps all, 0 keeps none
	names interner

	// closeMu makes Close wait for Records in flight: Record holds it shared while it queues,
	// so once Close holds it, nothing more enters the queue and the writer can drain it for good.
	closeMu sync.RWMutex
	closed  bool
	queue   chan pending
	stop    chan struct{} // closed by Close: drain the queue and end
	done    chan struct{} // closed by the writer when it has ended
	lost    error         // the writer's last failure to write at Close, read after done

	allows     atomic.Uint64 // allows seen, counted only while sampling
	sampledOut atomic.Uint64
	// window is the allow bound's current second (the high 32 bits, Unix seconds modulo 2^32)
	// and the allows kept in it (the low 32 bits), in one word so that one compare-and-swap
	// moves both.
	window     atomic.Uint64
	capped     atomic.Uint64
	shed       atomic.Uint64
	waited     atomic.Uint64
	afterClose atomic.Uint64
	unlogged   atomic.Uint64
	// unloggedReported is the Unix second of the last report of an unlogged deny: an outage
	// logs once a second, not once a deny.
	unloggedReported atomic.Int64
	kept             atomic.Uint64 // queued for the writer
	written          atomic.Uint64
	deleted          atomic.Uint64
	lostCount        atomic.Uint64

	seq uint64  // the last sequence written; the writer's alone after Open
	enc encoder // the writer's

	tail tailHub
}

var _ pdp.Recorder = (*Log)(nil)

// Open opens the log in cfg.Store and starts its writer. Close it to flush and stop the writer.
func Open(cfg Config) (*Log, error) {
	if cfg.Store == nil {
		return nil, errors.New("decisionlog: Config.Store is required")
	}
	if cfg.AllowSampleRate > 1 {
		return nil, fmt.Errorf("decisionlog: AllowSampleRate %v is more than 1", cfg.AllowSampleRate)
	}
	if cfg.MaxAllowsPerSecond > math.MaxUint32 {
		return nil, fmt.Errorf("decisionlog: MaxAllowsPerSecond %d is more than %d", cfg.MaxAllowsPerSecond, uint32(math.MaxUint32))
	}
	cfg = cfg.withDefaults()
	l := &Log{
		cfg: cfg, log: cfg.Logger.With("component", "decisionlog"), store: cfg.Store,
		queue: make(chan pending, cfg.QueueSize), stop: make(chan struct{}), done: make(chan struct{}),
	}
	switch r := cfg.AllowSampleRate; {
	case r == 0:
		l.ppm = rateScale
	case r > 0:
		l.ppm = uint64(r * rateScale)
	}
	if err := reindex(cfg.Store, l.log); err != nil {
		return nil, fmt.Errorf("decisionlog: %w", err)
	}
	if err := cfg.Store.View(func(tx store.Tx) error {
		if k, _ := tx.Last(recordsBucket); k != nil {
			l.seq = store.KeyUint64(k)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("decisionlog: read the last sequence: %w", err)
	}
	l.tail.init(cfg.TailBuffer, l.seq)
	go l.run()
	return l, nil
}

// Record implements pdp.Recorder. It copies the decision's fields (never the token) into the
// queue: an allow is kept or counted out by sampling, and counted as shed if the queue is full; a
// deny waits for room if the queue is full, for at most MaxDenyWait.
func (l *Log) Record(req pdp.CheckRequest, d pdp.Decision, latency time.Duration) {
	if d.Allow && !l.sampleAllow() {
		l.sampledOut.Add(1)
		return
	}
	now := l.cfg.Now()
	if d.Allow && !l.withinBound(now) {
		l.capped.Add(1)
		return
	}
	p := capture(&l.names, &req, &d, latency, now)
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		l.afterClose.Add(1)
		return
	}
	select {
	case l.queue <- p:
		l.kept.Add(1)
		return
	default:
	}
	if d.Allow {
		l.shed.Add(1)
		return
	}
	l.waited.Add(1)
	var expired <-chan time.Time // nil, which never fires, for a wait without bound
	if l.cfg.MaxDenyWait >= 0 {
		wait := time.NewTimer(l.cfg.MaxDenyWait)
		defer wait.Stop()
		expired = wait.C
	}
	select {
	case l.queue <- p:
		l.kept.Add(1)
	case <-expired:
		l.unlogged.Add(1)
		l.reportUnlogged(d.DecisionID)
	}
}

// reportUnlogged logs an unlogged deny at error level, at most once a second of the log's clock.
func (l *Log) reportUnlogged(id pdp.DecisionID) {
	sec := l.cfg.Now().Unix()
	last := l.unloggedReported.Load()
	if sec <= last || !l.unloggedReported.CompareAndSwap(last, sec) {
		return // this second's report is made, or being made
	}
	l.log.Error("denies are being answered without decision log entries: the queue stayed full for the whole wait (the disk is full or stuck, or denies arrive faster than it writes)",
		"max_wait", l.cfg.MaxDenyWait, "unlogged_denies", l.unlogged.Load(), "decision_id", id)
}

// sampleAllow says whether to keep the next allow: the n-th allow is kept when floor(n × rate)
// grows at n, which keeps exactly floor(n × rate) of the first n.
func (l *Log) sampleAllow() bool {
	switch l.ppm {
	case rateScale:
		return true
	case 0:
		return false
	}
	n := l.allows.Add(1)
	return n*l.ppm/rateScale != (n-1)*l.ppm/rateScale
}

// withinBound says whether an allow at now may be kept under MaxAllowsPerSecond, and counts it
// if so. Once a second's bound is reached, the rest of that second costs one load.
func (l *Log) withinBound(now time.Time) bool {
	if l.cfg.MaxAllowsPerSecond <= 0 {
		return true
	}
	bound := uint64(l.cfg.MaxAllowsPerSecond)
	sec := uint64(now.Unix()) << 32
	for {
		w := l.window.Load()
		switch {
		case w&^(1<<32-1) != sec:
			if l.window.CompareAndSwap(w, sec|1) {
				return true
			}
		case w&(1<<32-1) >= bound:
			return false
		case l.window.CompareAndSwap(w, w+1):
			return true
		}
	}
}

// Stats are the log's counters since Open.
type Stats struct {
	// Kept counts decisions accepted into the log: written, or queued to be.
	Kept uint64
	// Written counts entries committed to the store.
	Written uint64
	// SampledOut counts allows left out by sampling.
	SampledOut uint64
	// Capped counts allows left out by MaxAllowsPerSecond.
	Capped uint64
	// Shed counts allows left out because the queue was full.
	Shed uint64
	// Waited counts denies that waited for room in a full queue.
	Waited uint64
	// Unlogged counts denies that waited MaxDenyWait for room and were answered without an
	// entry.
	Unlogged uint64
	// AfterClose counts decisions recorded after Close began, which were not logged.
	AfterClose uint64
	// Lost counts entries Close could not write because the store failed.
	Lost uint64
	// Deleted counts entries removed by retention.
	Deleted uint64
}

// Omitted is every decision made but not logged: what ListDecisionsResponse.sampled_out reports.
func (s Stats) Omitted() uint64 {
	return s.SampledOut + s.Capped + s.Shed + s.Unlogged + s.AfterClose + s.Lost
}

// Stats returns the counters. Each only grows. Kept is read after Written and counted just after
// its decision is queued, so it is at least Written but for a decision written before its
// Record returned.
func (l *Log) Stats() Stats {
	written := l.written.Load()
	return Stats{
		Kept: l.kept.Load(), Written: written,
		SampledOut: l.sampledOut.Load(), Capped: l.capped.Load(), Shed: l.shed.Load(), Waited: l.waited.Load(),
		Unlogged:   l.unlogged.Load(),
		AfterClose: l.afterClose.Load(), Lost: l.lostCount.Load(), Deleted: l.deleted.Load(),
	}
}

// Close stops taking decisions, writes every queued one (fsync'd), ends every tail with
// ErrClosed and stops the writer. It returns an error if the store failed to take the last
// entries (counted in Stats.Lost). It does not close the store. Calling it again returns nil.
func (l *Log) Close() error {
	l.closeMu.Lock()
	if l.closed {
		l.closeMu.Unlock()
		return nil
	}
	l.closed = true
	l.closeMu.Unlock()
	close(l.stop)
	<-l.done
	l.tail.closeAll()
	return l.lost
}
