package revokersvc

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
)

// subscriberBuffer bounds how many messages wait for one live subscriber. A subscriber whose
// queue is full is cut off instead of being waited for: the writer and the other subscribers never
// slow down for it, and it resumes after its last sequence. The queue grows only as needed, so ten
// thousand idle subscribers cost no buffers. A variable only so that tests can overflow it cheaply.
var subscriberBuffer = 1024

// heartbeatSlots spreads the heartbeats over the interval: each subscriber belongs to one of these
// slots and the pump heartbeats one slot per tick, so that ten thousand subscribers never get
// their heartbeats in one burst that a revocation would wait behind.
const heartbeatSlots = 16

// outgoing is one message the hub hands to every matching subscriber: encoded once and shared,
// never modified.
type outgoing struct {
	msg  *treatyv1.SubscribeResponse // pre-encoded, see preEncoded
	seq  uint64                      // the event's sequence; zero for a heartbeat
	head uint64                      // a heartbeat's head sequence
	// through is, for a heartbeat, the last sequence the pump had broadcast when it made it: every
	// event up to it was queued (or filtered out) for a subscriber before this heartbeat.
	through uint64
	info    eventInfo // what filters look at

	// prepared is msg framed once for every plain stream (see plainStream), by the first of them
	// to send it.
	once     sync.Once
	prepared *grpc.PreparedMsg
}

// sendable returns what stream sends for m: on a plain stream the shared grpc.PreparedMsg, which
// SendMsg writes as it is; else msg, which the stream's SendMsg encodes (and compresses) itself.
// Encoding per stream was about 5% of the revoker's CPU per delivery at 1,000 subscribers, and
// about 100 of its 260 bytes of garbage: in bench/propagate (N=1,000, twelve alternated pairs)
// sharing it took the server's CPU per revocation from a median of 25.9 to 23.8 ms.
func (m *outgoing) sendable(stream grpc.ServerStream, plain bool) any {
	if !plain {
		return m.msg
	}
	m.once.Do(func() {
		p := new(grpc.PreparedMsg)
		if err := p.Encode(stream, m.msg); err == nil {
			m.prepared = p
		}
	})
	if m.prepared == nil { // the encoding failed: each stream encodes its own, and its SendMsg fails if that does
		return m.msg
	}
	return m.prepared
}

// plainStream reports whether the stream of ctx sends protobuf uncompressed, as every Treaty
// subscriber's does. A PreparedMsg holds the bytes of the codec and compressor of the stream that
// made it, so only streams that agree on both may share one: a stream that compresses its
// responses, or speaks another content subtype, encodes its own. The compressor a PreparedMsg
// uses is the one grpc-go chose when the stream opened (the server's RPCCompressor, else the
// request's own compression), which a later SetSendCompressor does not change: so the request
// must have come uncompressed too. (A server with RPCCompressor has no plain stream.) All of a
// Service's streams are on the one server it is registered with, so they share its codec.
// grpc-go tells a handler all this only through its transport stream's methods; should those
// go, no stream is plain and nothing is shared.
func plainStream(ctx context.Context) bool {
	st, ok := grpc.ServerTransportStreamFromContext(ctx).(interface {
		SendCompress() string
		RecvCompress() string
		ContentSubtype() string
	})
	if !ok {
		return false
	}
	identity := func(c string) bool { return c == "" || c == encoding.Identity }
	sub := st.ContentSubtype()
	return identity(st.SendCompress()) && identity(st.RecvCompress()) && (sub == "" || sub == "proto")
}

// preEncoded marshals m once and returns a message that carries those bytes as its only (unknown)
// fields: gRPC's proto codec writes unknown fields verbatim, so every stream sends the same bytes
// without encoding the event again, and any receiver decodes them as m. Marshalling a message
// from several goroutines at once is safe (protobuf only reads it and caches its size atomically).
func preEncoded(m *treatyv1.SubscribeResponse) (*treatyv1.SubscribeResponse, error) {
	raw, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	out := new(treatyv1.SubscribeResponse)
	out.ProtoReflect().SetUnknown(raw)
	return out, nil
}

// hub fans the log's new events and the heartbeats out to the live subscribers. One pump
// goroutine reads each new event from the log once, encodes it once, and offers it to every
// subscriber's queue without ever blocking; each stream's handler sends from its own queue. The
// pump runs only while someone is subscribed.
type hub struct {
	log       *revoker.Log
	heartbeat time.Duration
	logger    *slog.Logger
	stop      <-chan struct{}
	buffer    int // subscriberBuffer when the hub was made

	mu      sync.Mutex
	subs    map[*subscriber]struct{}
	running bool          // the pump goroutine is running
	idle    chan struct{} // tells the pump that the last subscriber left
	joined  int           // subscribers ever joined, to deal the heartbeat slots
}

func newHub(log *revoker.Log, heartbeat time.Duration, logger *slog.Logger, stop <-chan struct{}) *hub {
	return &hub{log: log, heartbeat: heartbeat, logger: logger, stop: stop, buffer: subscriberBuffer,
		subs: map[*subscriber]struct{}{}, idle: make(chan struct{}, 1)}
}

// subscriber is one live stream's queue.
type subscriber struct {
	filter *filter // nil streams everything
	limit  int     // the queue's bound
	slot   int     // the heartbeat slot

	mu    sync.Mutex
	queue []*outgoing
	spare []*outgoing // the handler's drained slice, reused for the next queue
	// wake is the one channel the stream's handler waits on: for queued messages, for a cut-off,
	// for the stream's end and for the service's Close. It checks the flags below when it wakes.
	wake        chan struct{}
	isCut       atomic.Bool // the queue overflowed: the subscriber is cut off
	streamEnded atomic.Bool // the stream's context ended
}

// poke wakes the stream's handler if it is not already due to wake.
func (s *subscriber) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// endStream records that the stream's context ended and wakes the handler.
func (s *subscriber) endStream() {
	s.streamEnded.Store(true)
	s.poke()
}

// offer queues m without blocking. It reports false if the queue is full.
func (s *subscriber) offer(m *outgoing) bool {
	s.mu.Lock()
	if len(s.queue) >= s.limit {
		s.mu.Unlock()
		return false
	}
	s.queue = append(s.queue, m)
	s.mu.Unlock()
	s.poke()
	return true
}

// take returns every queued message, oldest first. The slice is valid until the next take.
func (s *subscriber) take() []*outgoing {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.queue
	clear(s.spare)
	s.queue, s.spare = s.spare[:0], out
	return out
}

// join adds a live subscriber, starting the pump if it is the first.
func (h *hub) join(f *filter) *subscriber {
	sub := &subscriber{filter: f, limit: h.buffer, wake: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	sub.slot = h.joined % heartbeatSlots
	h.joined++
	h.subs[sub] = struct{}{}
	if !h.running {
		h.running = true
		// A stale idle signal from an earlier pump must not stop this one.
		select {
		case <-h.idle:
		default:
		}
		// The pump starts after the head as of now, before the joining stream's last replay: an
		// event appended between this join and the pump goroutine's first read is then still the
		// pump's to broadcast. (Reading the head in the pump itself lost such an event for the
		// stream until the next one came: a stream whose replay had ended just before it.)
		go h.pump(h.log.Head())
	}
	return sub
}

// leave removes a subscriber; the pump stops when the last one leaves.
func (h *hub) leave(sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, sub)
	if len(h.subs) == 0 && h.running {
		select {
		case h.idle <- struct{}{}:
		default:
		}
	}
}

// pump reads every new event after next (the head when join started it) from the log once and
// broadcasts it, and broadcasts a heartbeat at each interval, until no one is subscribed or the
// service closes. A subscriber replays anything older from the log itself, and fills any gap
// between its replay and the first event it hears from the pump.
func (h *hub) pump(next uint64) {
	tick := time.NewTicker(max(h.heartbeat/heartbeatSlots, time.Millisecond))
	defer tick.Stop()
	slot := 0
	for {
		changed := h.log.Changed() // before reading, so no append is missed
		events, err := h.log.Read(next, readBatch)
		if err != nil {
			// Subscribers still fill gaps from the log, so a failed read delays events, never
			// loses them; retry at the next heartbeat.
			h.logger.Error("fan-out could not read the revocation log", "after", next, "err", err)
			events = nil
			changed = nil
		}
		if len(events) > 0 {
			state := h.log.State() // at or past every event read, for the filters' partner lookups
			batch := make([]*outgoing, 0, len(events))
			failed := false
			for _, ev := range events {
				msg, err := preEncoded(&treatyv1.SubscribeResponse{Message: &treatyv1.SubscribeResponse_Event{Event: ev}})
				if err != nil {
					h.logger.Error("fan-out could not encode an event", "sequence", ev.GetSequence(), "err", err)
					failed = true
					break // the subscribers fill the gap from the log when the next event comes
				}
				batch = append(batch, &outgoing{msg: msg, seq: ev.GetSequence(), info: infoOf(ev, state)})
				next = ev.GetSequence()
			}
			if !h.broadcast(batch, -1) {
				return
			}
			if !failed {
				continue
			}
			// Retry the event that failed at the next append or tick, not in a loop that would
			// starve the heartbeats.
		}
		select {
		case <-changed:
		case <-tick.C:
			hb := h.heartbeatMessage()
			// A live heartbeat names the head as of the events this pump has broadcast, never an
			// append it has not read yet: a subscriber that hears a heartbeat at H has then been
			// sent every event up to H that passes its filter (a filtered one hears nothing
			// else to tell it so).
			if beat := hb.GetHeartbeat(); beat.GetHeadSequence() > next {
				beat.HeadSequence = next
			}
			msg, err := preEncoded(hb)
			if err != nil {
				h.logger.Error("fan-out could not encode a heartbeat", "err", err)
				continue
			}
			slot = (slot + 1) % heartbeatSlots
			if !h.broadcast([]*outgoing{{msg: msg, head: hb.GetHeartbeat().GetHeadSequence(), through: next}}, slot) {
				return
			}
		case <-h.idle:
			if h.stopIfIdle() {
				return
			}
		case <-h.stop:
			h.mu.Lock()
			h.running = false
			h.mu.Unlock()
			return
		}
	}
}

// broadcast offers each message to every subscriber whose filter matches it (and, if slot is not
// -1, whose heartbeat slot it is), cutting off the ones whose queue is full. It reports false,
// having marked the pump stopped, if no one is subscribed.
func (h *hub) broadcast(batch []*outgoing, slot int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) == 0 {
		h.running = false
		return false
	}
	for sub := range h.subs {
		if slot >= 0 && sub.slot != slot {
			continue
		}
		for _, m := range batch {
			if m.seq != 0 && !sub.filter.match(m.info) {
				continue
			}
			if !sub.offer(m) {
				delete(h.subs, sub)
				sub.isCut.Store(true)
				sub.poke()
				break
			}
		}
	}
	return true
}

// wakeAll wakes every live subscriber's handler, for the service's Close.
func (h *hub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		sub.poke()
	}
}

// stopIfIdle marks the pump stopped if no one is subscribed.
func (h *hub) stopIfIdle() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) > 0 {
		return false
	}
	h.running = false
	return true
}

// heartbeatMessage announces the epoch, the head and the oldest replayable position.
func (h *hub) heartbeatMessage() *treatyv1.SubscribeResponse {
	return &treatyv1.SubscribeResponse{Message: &treatyv1.SubscribeResponse_Heartbeat{Heartbeat: &treatyv1.Heartbeat{
		Epoch: h.log.Epoch(), HeadSequence: h.log.Head(), Time: timestamppb.Now(), RetainedAfterSequence: h.log.RetainedAfter(),
	}}}
}
