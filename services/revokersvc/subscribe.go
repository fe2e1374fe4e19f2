package revokersvc

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/edge"
)

// readBatch bounds how many events one read of the log returns.
const readBatch = 512

// Subscribe implements treatyv1.RevocationServiceServer: a heartbeat first, then every event after
// the requested sequence that passes the filter, in order, replayed from the log, then live events
// from the shared fan-out, with heartbeats in between. A subscriber that cannot keep up with the
// live feed is cut off with RESOURCE_EXHAUSTED and resubscribes after its last sequence.
func (s *Service) Subscribe(req *treatyv1.SubscribeRequest, stream grpc.ServerStreamingServer[treatyv1.SubscribeResponse]) error {
	if err := validateSubscribe(req); err != nil {
		return edge.Status(s.logger, err)
	}
	after := req.GetAfterSequence()
	if retained := s.log.RetainedAfter(); after < retained {
		s.subs.outOfRange.Add(1)
		return edge.Status(s.logger, fail.OutOfRangef(
			"events after %d were compacted; the log replays after %d: resync from Snapshot, then subscribe after its sequence", after, retained))
	}
	sess := &session{s: s, stream: stream, filter: newFilter(req.GetFilter()), next: after, plain: plainStream(stream.Context()),
		name: s.identify(stream.Context()), since: time.Now()}
	sess.pos.Store(after)
	s.subs.add(sess)
	defer s.subs.remove(sess)
	if err := sess.heartbeat(); err != nil {
		return err
	}
	// Replay before joining the fan-out, so that a subscriber far behind does not fill its live
	// queue while it catches up; then join, and replay again whatever was appended in between.
	// From then on every event reaches the session from the log or the fan-out (or both, and the
	// session drops what it has sent already).
	if err := sess.catchUp(s.log.Head()); err != nil {
		return err
	}
	sub := s.hub.join(sess.filter)
	defer s.hub.leave(sub)
	if err := sess.catchUp(s.log.Head()); err != nil {
		return err
	}
	// The handler waits on its queue's wake channel alone, and the end of the stream's context,
	// a cut-off and the service's Close wake it there too; it checks why when it wakes. A select
	// over four channels per delivery locked and queued on all four each time: about 7% of the
	// server's CPU per revocation at 1,000 subscribers in bench/propagate.
	ctx := stream.Context()
	ended := context.AfterFunc(ctx, sub.endStream)
	defer ended()
	for {
		switch {
		case sub.isCut.Load():
			return sess.cutOff(sub.limit)
		case sub.streamEnded.Load():
			return nil
		case s.closed():
			return status.Error(codes.Unavailable, "the revoker is shutting down; resubscribe after your last sequence")
		}
		<-sub.wake
		for _, m := range sub.take() {
			if sub.isCut.Load() {
				return sess.cutOff(sub.limit)
			}
			if err := sess.deliver(m); err != nil {
				return err
			}
		}
	}
}

// session is one stream's position.
type session struct {
	s      *Service
	stream grpc.ServerStreamingServer[treatyv1.SubscribeResponse]
	filter *filter
	next   uint64    // the last sequence sent or skipped by the filter
	lastHB time.Time // when the last heartbeat was sent
	plain  bool      // the stream may send the fan-out's shared encodings (plainStream)

	// For monitoring (Service.Subscribers): who, since when, and how far the stream has got.
	name  string
	since time.Time
	pos   atomic.Uint64 // next, or further once a heartbeat proves the filter skipped the events in between
}

// advance records how far the stream has got for monitoring. Only the stream's goroutine writes.
func (ss *session) advance(seq uint64) {
	if seq > ss.pos.Load() {
		ss.pos.Store(seq)
	}
}

func (ss *session) heartbeat() error {
	ss.lastHB = time.Now()
	return ss.stream.Send(ss.s.hub.heartbeatMessage())
}

// deliver sends one message from the fan-out, first replaying from the log any events between the
// session's position and it, and dropping it if the session has sent it already.
func (ss *session) deliver(m *outgoing) error {
	if m.seq == 0 { // a heartbeat
		if m.head < ss.next {
			// Made before this stream's replay went past its head: a subscriber must never hear a
			// head below what it has received (it would take the log for replaced). Tell it now.
			return ss.heartbeat()
		}
		ss.lastHB = time.Now()
		if err := ss.stream.SendMsg(m.sendable(ss.stream, ss.plain)); err != nil {
			return err
		}
		// Every event up to m.through was queued before this heartbeat or filtered out, and the
		// queue is sent in order: the stream has everything up to there that it will ever get.
		ss.advance(max(ss.next, m.through))
		return nil
	}
	if m.seq <= ss.next {
		return nil
	}
	if m.seq > ss.next+1 {
		if err := ss.catchUp(m.seq - 1); err != nil {
			return err
		}
		if ss.next != m.seq-1 {
			// The fan-out read this event after the ones before it, so the log has them all.
			return edge.Status(ss.s.logger, fmt.Errorf("revokersvc: replay stopped at %d before live event %d", ss.next, m.seq))
		}
	}
	ss.next = m.seq
	if !ss.filter.match(m.info) {
		ss.advance(ss.next)
		return nil
	}
	if err := ss.stream.SendMsg(m.sendable(ss.stream, ss.plain)); err != nil {
		return err
	}
	ss.advance(ss.next)
	return nil
}

// catchUp sends the events after the session's position up to upTo from the log, encoding them
// for this stream. It stops early if the log has not published them yet: they then come from the
// fan-out.
func (ss *session) catchUp(upTo uint64) error {
	for ss.next < upTo {
		events, err := ss.s.log.Read(ss.next, int(min(readBatch, upTo-ss.next)))
		if err != nil {
			if fail.KindOf(err) == fail.OutOfRange {
				ss.s.subs.outOfRange.Add(1) // compacted while this stream replayed
			}
			return edge.Status(ss.s.logger, err)
		}
		if len(events) == 0 {
			return nil
		}
		state := ss.s.log.State()
		for _, ev := range events {
			if ev.GetSequence() > upTo {
				return nil
			}
			ss.next = ev.GetSequence()
			if !ss.filter.match(infoOf(ev, state)) {
				ss.advance(ss.next)
				continue
			}
			if err := ss.stream.Send(&treatyv1.SubscribeResponse{Message: &treatyv1.SubscribeResponse_Event{Event: ev}}); err != nil {
				return err
			}
			ss.advance(ss.next)
		}
		// A long replay still tells the subscriber how far the log goes.
		if time.Since(ss.lastHB) >= ss.s.heartbeat {
			if err := ss.heartbeat(); err != nil {
				return err
			}
		}
	}
	return nil
}

// cutOff is the status of a subscriber that fell behind the live feed.
func (ss *session) cutOff(queued int) error {
	ss.s.subs.cutOff.Add(1)
	return status.Errorf(codes.ResourceExhausted,
		"the subscriber fell behind the live feed (%d messages queued unsent) and was cut off; resubscribe after the last sequence it received", queued)
}
