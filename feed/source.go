package feed

import (
	"context"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// Source is where a follower (a PDP, the issuer watching for key revocations) reads the feed
// from: the revoker, reached through its gRPC client (services/revokersvc implements it), so the
// domain packages know nothing of gRPC.
type Source interface {
	// Subscribe streams every event after the given sequence, then follows live. The first
	// message is a heartbeat carrying the epoch and head.
	Subscribe(ctx context.Context, after uint64) (Stream, error)
	// Snapshot returns the revoker's materialized state at its head.
	Snapshot(ctx context.Context) (*State, error)
}

// Stream is one subscription.
type Stream interface {
	Recv() (*treatyv1.SubscribeResponse, error)
}

// Receive reads stream into msgs until the stream fails or ctx ends, then reports why on errc
// (give it room for one error). Run in its own goroutine, it lets a follower apply one batch while
// the next arrives: whatever has queued by then becomes the next batch.
func Receive(ctx context.Context, stream Stream, msgs chan<- *treatyv1.SubscribeResponse, errc chan<- error) {
	for {
		m, err := stream.Recv()
		if err != nil {
			errc <- err
			return
		}
		select {
		case msgs <- m:
		case <-ctx.Done():
			errc <- ctx.Err()
			return
		}
	}
}
