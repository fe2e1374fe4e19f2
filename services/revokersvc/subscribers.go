package revokersvc

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/peer"
)

// subscribers tracks the open subscriptions for monitoring: who they are and how far each has
// got. Only opening and closing a subscription take the lock; a stream's progress is an atomic.
type subscribers struct {
	mu       sync.Mutex
	sessions map[*session]struct{}

	cutOff     atomic.Uint64 // streams cut off for falling behind the live feed
	outOfRange atomic.Uint64 // subscriptions refused (or ended) because their position was compacted
}

func (s *subscribers) add(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions == nil {
		s.sessions = map[*session]struct{}{}
	}
	s.sessions[ss] = struct{}{}
}

func (s *subscribers) remove(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, ss)
}

// SubscriberInfo describes one open subscription, for monitoring.
type SubscriberInfo struct {
	// Name identifies the subscriber: Config.Identify's answer, else the peer's IP address. Many
	// streams may share one name (a gateway's replicas behind one address).
	Name string
	// Sent is the sequence up to which the stream has been sent every event it will get: those
	// its filter passes were sent, the others skipped. The revoker's head minus Sent is how far
	// the subscriber is behind (the stream carries no acknowledgements: what was sent may still be
	// in flight).
	Sent uint64
	// Since is when the subscription opened.
	Since time.Time
	// Filtered reports whether the subscription has a filter.
	Filtered bool
}

// Subscribers returns the open subscriptions, in no particular order.
func (s *Service) Subscribers() []SubscriberInfo {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	out := make([]SubscriberInfo, 0, len(s.subs.sessions))
	for ss := range s.subs.sessions {
		out = append(out, SubscriberInfo{Name: ss.name, Sent: ss.pos.Load(), Since: ss.since, Filtered: ss.filter != nil})
	}
	return out
}

// SubscriberStats counts subscriptions, for monitoring.
type SubscriberStats struct {
	// Connected is how many subscriptions are open.
	Connected int
	// CutOff counts the subscriptions cut off since the service started for falling behind the
	// live feed (RESOURCE_EXHAUSTED); OutOfRange those refused or ended because the events after
	// their position were compacted (OUT_OF_RANGE): both resubscribe, the latter after a resync.
	CutOff, OutOfRange uint64
	// Head is the revoker's head sequence.
	Head uint64
}

// SubscriberStats returns the subscription counts and the head they are measured against.
func (s *Service) SubscriberStats() SubscriberStats {
	s.subs.mu.Lock()
	n := len(s.subs.sessions)
	s.subs.mu.Unlock()
	return SubscriberStats{Connected: n, CutOff: s.subs.cutOff.Load(), OutOfRange: s.subs.outOfRange.Load(), Head: s.log.Head()}
}

// identify names a subscriber for monitoring: Config.Identify's answer if it has one, else the
// peer's IP address (without the port, which changes at every reconnection).
func (s *Service) identify(ctx context.Context) string {
	if s.identifyFn != nil {
		if name := s.identifyFn(ctx); name != "" {
			return name
		}
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	addr := p.Addr.String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
