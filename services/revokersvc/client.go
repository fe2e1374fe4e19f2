package revokersvc

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/services/edge"
)

// NewPublisher returns an outbox.Publisher that publishes through the revoker at conn.
func NewPublisher(conn grpc.ClientConnInterface) outbox.Publisher {
	return publisher{treatyv1.NewRevocationServiceClient(conn)}
}

type publisher struct {
	c treatyv1.RevocationServiceClient
}

func (p publisher) Publish(ctx context.Context, entries []*treatyv1.PublishEntry) ([]uint64, error) {
	resp, err := p.c.Publish(ctx, &treatyv1.PublishRequest{Entries: entries})
	if err != nil {
		return nil, edge.FromStatus(err)
	}
	return resp.GetSequences(), nil
}

// NewSource returns a feed.Source that follows the revoker at conn.
func NewSource(conn grpc.ClientConnInterface) feed.Source {
	return source{treatyv1.NewRevocationServiceClient(conn)}
}

type source struct {
	c treatyv1.RevocationServiceClient
}

func (s source) Subscribe(ctx context.Context, after uint64) (feed.Stream, error) {
	stream, err := s.c.Subscribe(ctx, &treatyv1.SubscribeRequest{AfterSequence: after})
	if err != nil {
		return nil, edge.FromStatus(err)
	}
	return outOfRangeStream{stream}, nil
}

// outOfRangeStream turns an OUT_OF_RANGE status (the log compacted the events the subscription
// asked for) into a fail.OutOfRange error, which a follower answers by resyncing from a snapshot.
// Other errors pass through unchanged.
type outOfRangeStream struct {
	grpc.ServerStreamingClient[treatyv1.SubscribeResponse]
}

func (s outOfRangeStream) Recv() (*treatyv1.SubscribeResponse, error) {
	m, err := s.ServerStreamingClient.Recv()
	if status.Code(err) == codes.OutOfRange {
		return nil, edge.FromStatus(err)
	}
	return m, err
}

func (s source) Snapshot(ctx context.Context) (*feed.State, error) {
	resp, err := s.c.Snapshot(ctx, &treatyv1.SnapshotRequest{})
	if err != nil {
		return nil, edge.FromStatus(err)
	}
	return feed.FromProto(resp.GetState()), nil
}

// feedWindow is the flow-control window a feed subscriber advertises, per stream and per
// connection: large enough for any burst the revoker queues for one subscriber.
const feedWindow = 1 << 20

// FeedDialOptions returns the dial options for a connection that follows the feed (a PDP's, an
// issuer's, a gateway's). Static window sizes turn off grpc-go's BDP estimation, which otherwise
// makes an idle-then-busy connection ping for nearly every event: an extra frame to read and a
// reply to write on the revoker, per subscriber per event. Transport credentials are the caller's
// to add.
func FeedDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(feedWindow),
		grpc.WithInitialConnWindowSize(feedWindow),
	}
}

// NewCredentialRevoker returns a registry.CredentialRevoker that revokes credentials through the
// revoker at conn, for the registry's offboarding workflow. Concurrent calls share the revoker's
// group commit.
func NewCredentialRevoker(conn grpc.ClientConnInterface) registry.CredentialRevoker {
	return credentialRevoker{treatyv1.NewRevocationServiceClient(conn)}
}

type credentialRevoker struct {
	c treatyv1.RevocationServiceClient
}

func (r credentialRevoker) RevokeCredential(ctx context.Context, jti, reason, actor, requestID string) (uint64, bool, error) {
	resp, err := r.c.Revoke(ctx, &treatyv1.RevokeRequest{
		TargetKind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, TargetId: jti, Reason: reason, Actor: actor, RequestId: requestID,
	})
	if err != nil {
		return 0, false, edge.FromStatus(err)
	}
	return resp.GetSequence(), resp.GetAlreadyApplied(), nil
}
