// Package pdp is the policy decision point: it follows the feed into an immutable in-memory state and decides checks against it.
package pdp

import (
	"context"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// Source is where the PDP reads the feed from: the revoker, reached through its gRPC client
// (services/revokersvc implements it), so this package knows nothing of gRPC.
type Source interface {
	// Subscribe streams every event after the given sequence, then follows live. The first
	// message is a heartbeat carrying the epoch and head.
	Subscribe(ctx context.Context, after uint64) (Stream, error)
	// Snapshot returns the revoker's materialized state at its head.
	Snapshot(ctx context.Context) (*feed.State, error)
}

// Stream is one subscription.
type Stream interface {
	Recv() (*treatyv1.SubscribeResponse, error)
}
