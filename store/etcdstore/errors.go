package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/treaty-dev/treaty/fail"
)

// errCompacted marks a read whose snapshot revision etcd has compacted away: an Update starts
// over on a fresh snapshot; a View reports it.
var errCompacted = errors.New("etcdstore: the snapshot revision was compacted")

// unreachable reports whether err says the cluster could not answer: no leader or quorum, a
// deadline passed, no member reachable. Such a request can be retried once the cluster recovers.
func unreachable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, clientv3.ErrNoAvailableEndpoints) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// advice is what an operator should check when the cluster does not answer.
const advice = "check that a majority of the etcd members are running and reachable from this server, then retry"

// readError classifies the error of a read.
func (s *Store) readError(err error) error {
	switch {
	case errors.Is(rpctypes.Error(err), rpctypes.ErrCompacted):
		e := fail.Abortedf("the %s store's snapshot was compacted by etcd during a long transaction; retry", s.name)
		e.Err = errCompacted
		return e
	case s.ctx.Err() != nil:
		return fmt.Errorf("the %s store is closed", s.name)
	case unreachable(err):
		return fail.Unavailablef(err, "the %s store's etcd cluster (%s) did not answer a read within %v (%s); %s",
			s.name, s.endpoints(), s.opts.requestTimeout, cause(err), advice)
	}
	return fmt.Errorf("%s store: etcd read: %w", s.name, err)
}

// commitError classifies the error of a commit, whose Txn held cmps comparisons and ops writes.
func (s *Store) commitError(err error, cmps, ops int) error {
	switch {
	case errors.Is(rpctypes.Error(err), rpctypes.ErrTooManyOps):
		return fmt.Errorf("%w: %d comparisons and %d writes are more than the cluster's --max-txn-ops allows; nothing was written (raise --max-txn-ops on every etcd member, or write less per transaction)",
			ErrTooLarge, cmps, ops)
	case errors.Is(rpctypes.Error(err), rpctypes.ErrRequestTooLarge), status.Code(err) == codes.ResourceExhausted:
		return fmt.Errorf("%w: the request is larger than the cluster's --max-request-bytes (or the client's send limit) allows; nothing was written: %v",
			ErrTooLarge, err)
	case s.ctx.Err() != nil:
		return fmt.Errorf("the %s store is closed; the write may or may not have been applied, entirely or not at all", s.name)
	case unreachable(err):
		return fail.Unavailablef(err, "the %s store's etcd cluster (%s) did not confirm a write within %v (%s), so it may or may not be applied, entirely or not at all; %s",
			s.name, s.endpoints(), s.opts.requestTimeout, cause(err), advice)
	}
	return fmt.Errorf("%s store: etcd commit: %w", s.name, err)
}

// endpoints names the cluster in messages: the client's endpoints (URLs, no credentials).
func (s *Store) endpoints() string { return strings.Join(s.client.Endpoints(), ", ") }

// cause names what went wrong in words an operator recognizes.
func cause(err error) string {
	switch ev := rpctypes.Error(err); {
	case errors.Is(ev, rpctypes.ErrNoLeader):
		return "no leader: fewer than a quorum of members are up"
	case errors.Is(ev, rpctypes.ErrTimeout), errors.Is(ev, rpctypes.ErrTimeoutDueToLeaderFail),
		errors.Is(ev, rpctypes.ErrTimeoutDueToConnectionLost):
		return "the cluster timed out: it may have lost its quorum"
	case errors.Is(err, context.DeadlineExceeded), status.Code(err) == codes.DeadlineExceeded:
		return "deadline exceeded: no quorum, or no member reachable"
	}
	return "unreachable"
}
