// Package subscriber follows the revoker's feed for gateways and other Go consumers: the dial
// options a feed connection should use, and a Follower that resumes after its last sequence on
// every reconnection, so that its caller sees each event once, in order, however often the
// connection breaks.
package subscriber

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/revokersvc"
)

// DialOptions returns the dial options for a connection to the revoker that carries a
// subscription: static flow-control windows, which keep grpc-go from pinging for bandwidth
// estimation on every burst. Add transport credentials to them.
func DialOptions() []grpc.DialOption { return revokersvc.FeedDialOptions() }

var (
	// ErrReplaced means the log the follower followed was replaced: its epoch changed, or its head
	// went below the last sequence received. Keep every revocation received so far, resync from a
	// Snapshot and follow again after the snapshot's sequence.
	ErrReplaced = errors.New("subscriber: the revocation log was replaced")
	// ErrOutOfRange means the revoker no longer retains the events after the follower's position.
	// Resync from a Snapshot and follow again after the snapshot's sequence.
	ErrOutOfRange = errors.New("subscriber: the revoker no longer retains the events after this position")
)

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 3 * time.Second
)

// Config configures a Follower.
type Config struct {
	// Conn is a connection to the revoker, dialled with DialOptions.
	Conn grpc.ClientConnInterface
	// After is the last sequence already seen; the follower starts with the next one.
	After uint64
	// Epoch is the epoch of the log After belongs to; empty adopts the first one heard.
	Epoch string
	// Filter narrows the subscription; nil follows everything.
	Filter *treatyv1.SubscribeFilter
	// OnHeartbeat, if set, is called from Next with every heartbeat (the first of each stream
	// included), for a caller that tracks how fresh it is.
	OnHeartbeat func(*treatyv1.Heartbeat)
	// Logger receives reconnection warnings; defaults to slog.Default().
	Logger *slog.Logger
}

// Follower reads the feed one event at a time. It is not safe for concurrent use.
type Follower struct {
	cfg     Config
	client  treatyv1.RevocationServiceClient
	ctx     context.Context
	last    uint64
	epoch   string
	hb      *treatyv1.Heartbeat
	stream  grpc.ServerStreamingClient[treatyv1.SubscribeResponse]
	resp    *treatyv1.SubscribeResponse // Next decodes into it: only the events it points to are handed out
	shared  sharedMessage               // NextShared decodes into it
	cancel  context.CancelFunc
	started bool // the current stream's opening heartbeat arrived
	backoff time.Duration
}

// Follow returns a follower that subscribes when Next is first called. It follows until ctx
// ends.
func Follow(ctx context.Context, cfg Config) *Follower {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Follower{cfg: cfg, client: treatyv1.NewRevocationServiceClient(cfg.Conn), ctx: ctx,
		last: cfg.After, epoch: cfg.Epoch, backoff: minBackoff, resp: new(treatyv1.SubscribeResponse)}
}

// Last returns the sequence of the last event returned (or skipped by the filter), the position
// to resume after.
func (f *Follower) Last() uint64 { return f.last }

// Heartbeat returns the latest heartbeat, or nil before the first.
func (f *Follower) Heartbeat() *treatyv1.Heartbeat { return f.hb }

// Close ends the current subscription.
func (f *Follower) Close() { f.drop() }

// Next returns the next event, reconnecting as often as needed. It returns ctx's error once ctx
// ends, ErrReplaced or ErrOutOfRange when the caller must resync, and any other error the
// revoker answers that retrying cannot fix (an invalid filter). The event is the caller's to
// keep.
func (f *Follower) Next() (*treatyv1.Event, error) { return f.next(false) }

// NextShared is Next for a caller that is done with each event before it asks for the next (a
// gateway that adds a jti to its denylist): the event it returns may be the follower's own,
// overwritten by the next call to Next or NextShared. Its strings stay valid and may be kept;
// to keep the event itself, use Next or proto.Clone it. In exchange, a credential revocation
// allocates only its jti and request id (and an actor, reason or partner id unlike the previous
// event's), where Next allocates the whole event (about 400 bytes): at a thousand subscriptions
// in one process, that garbage is what set off the collections that delayed the slowest
// revocations. NextShared receives into a type of its own, which a client stream interceptor
// on Conn that inspects received messages sees instead of a SubscribeResponse: use Next there.
func (f *Follower) NextShared() (*treatyv1.Event, error) { return f.next(true) }

func (f *Follower) next(shared bool) (*treatyv1.Event, error) {
	for {
		if err := f.ctx.Err(); err != nil {
			f.drop()
			return nil, err
		}
		if f.stream == nil {
			if err := f.subscribe(); err != nil {
				if err := f.fatal(err); err != nil {
					return nil, err
				}
				if err := f.wait(); err != nil {
					return nil, err
				}
				continue
			}
		}
		m, err := f.recv(shared)
		if err != nil {
			f.drop()
			if err := f.fatal(err); err != nil {
				return nil, err
			}
			f.cfg.Logger.Warn("feed subscription ended; resubscribing", "after", f.last, "err", err)
			if err := f.wait(); err != nil {
				return nil, err
			}
			continue
		}
		switch msg := m.GetMessage().(type) {
		case *treatyv1.SubscribeResponse_Heartbeat:
			hb := msg.Heartbeat
			if f.epoch == "" {
				f.epoch = hb.GetEpoch()
			}
			if hb.GetEpoch() != f.epoch || hb.GetHeadSequence() < f.last {
				f.drop()
				return nil, fmt.Errorf("%w: following %s at %d, the revoker has %s at head %d", ErrReplaced, f.epoch, f.last, hb.GetEpoch(), hb.GetHeadSequence())
			}
			f.hb, f.started = hb, true
			if f.cfg.OnHeartbeat != nil {
				f.cfg.OnHeartbeat(hb)
			}
		case *treatyv1.SubscribeResponse_Event:
			ev := msg.Event
			switch seq := ev.GetSequence(); {
			case !f.started:
				f.drop() // a stream must open with a heartbeat; try again
			case seq <= f.last:
				continue // sent already
			case f.cfg.Filter == nil && seq != f.last+1:
				f.cfg.Logger.Warn("gap in the feed; resubscribing", "after", f.last, "got", seq)
				f.drop()
			default:
				f.last = seq
				f.backoff = minBackoff
				return ev, nil
			}
		}
	}
}

// recv receives the next message on the current stream. For Next, decoding resets f.resp and
// allocates a new event (or heartbeat) each time, so what an earlier Next returned stays the
// caller's; only the wrapper is reused. For NextShared, a credential revocation is decoded into
// f.shared's reused objects, and anything else into a fresh message (so a heartbeat, which the
// follower keeps, is never overwritten).
func (f *Follower) recv(shared bool) (*treatyv1.SubscribeResponse, error) {
	if !shared {
		return f.resp, f.stream.RecvMsg(f.resp)
	}
	if err := f.stream.RecvMsg(&f.shared); err != nil {
		return nil, err
	}
	return f.shared.msg, nil
}

func (f *Follower) subscribe() error {
	ctx, cancel := context.WithCancel(f.ctx)
	stream, err := f.client.Subscribe(ctx, &treatyv1.SubscribeRequest{AfterSequence: f.last, Filter: f.cfg.Filter},
		grpc.ForceCodecV2(newFeedCodec()))
	if err != nil {
		cancel()
		return err
	}
	f.stream, f.cancel, f.started = stream, cancel, false
	return nil
}

func (f *Follower) drop() {
	if f.cancel != nil {
		f.cancel()
	}
	f.stream, f.cancel, f.started = nil, nil, false
}

// fatal returns the error to hand the caller if err cannot be fixed by resubscribing.
func (f *Follower) fatal(err error) error {
	if ctxErr := f.ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	switch status.Code(err) {
	case codes.OutOfRange:
		return fmt.Errorf("%w: after %d: %v", ErrOutOfRange, f.last, err)
	case codes.InvalidArgument, codes.Unimplemented, codes.PermissionDenied, codes.Unauthenticated:
		return fmt.Errorf("subscriber: subscribe after %d: %w", f.last, err)
	}
	return nil
}

// wait sleeps a jittered, doubling backoff before the next attempt.
func (f *Follower) wait() error {
	d := f.backoff/2 + rand.N(f.backoff/2+1)
	f.backoff = min(f.backoff*2, maxBackoff)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
}
