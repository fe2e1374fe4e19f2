// Package revokersvc is the gRPC edge of the revoker: RevocationService on top of revoker.Log, and
// the client adapters other services use to publish into and follow the feed.
package revokersvc

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/edge"
)

// Config configures the service.
type Config struct {
	// Log is the feed.
	Log *revoker.Log
	// Heartbeat is how often subscribers hear the epoch and head; default 1 s.
	Heartbeat time.Duration
	// Logger receives operational logs.
	Logger *slog.Logger
}

// DefaultHeartbeat is the default heartbeat interval.
const DefaultHeartbeat = time.Second

// readBatch bounds how many events one read of the log returns to a subscriber.
const readBatch = 512

// Service implements treatyv1.RevocationServiceServer.
type Service struct {
	treatyv1.UnimplementedRevocationServiceServer
	log       *revoker.Log
	heartbeat time.Duration
	logger    *slog.Logger
	stopOnce  sync.Once
	stop      chan struct{}
}

var _ treatyv1.RevocationServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{log: cfg.Log, heartbeat: cfg.Heartbeat, logger: cfg.Logger, stop: make(chan struct{})}
}

// Close ends every open subscription with UNAVAILABLE, so that a graceful shutdown does not wait
// for streams that would otherwise never end. Subscribers reconnect elsewhere or later.
func (s *Service) Close() { s.stopOnce.Do(func() { close(s.stop) }) }

// Register registers the service with a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { treatyv1.RegisterRevocationServiceServer(r, s) }

// Revoke implements treatyv1.RevocationServiceServer.
func (s *Service) Revoke(ctx context.Context, req *treatyv1.RevokeRequest) (*treatyv1.RevokeResponse, error) {
	r := requestOf(req.GetTargetKind(), req.GetTargetId(), req.GetReason(), req.GetActor(), req.GetRequestId())
	if err := r.Check(); err != nil {
		return nil, edge.Status(s.logger, err)
	}
	out, err := s.log.Revoke(ctx, r)
	if err != nil {
		return nil, edge.Status(s.logger, err)
	}
	return &treatyv1.RevokeResponse{Sequence: out.Sequence, AlreadyApplied: out.AlreadyApplied}, nil
}

// Restore implements treatyv1.RevocationServiceServer.
func (s *Service) Restore(ctx context.Context, req *treatyv1.RestoreRequest) (*treatyv1.RestoreResponse, error) {
	r := requestOf(req.GetTargetKind(), req.GetTargetId(), req.GetReason(), req.GetActor(), req.GetRequestId())
	if err := r.Check(); err != nil {
		return nil, edge.Status(s.logger, err)
	}
	out, err := s.log.Restore(ctx, r)
	if err != nil {
		return nil, edge.Status(s.logger, err)
	}
	return &treatyv1.RestoreResponse{Sequence: out.Sequence, AlreadyApplied: out.AlreadyApplied}, nil
}

// Publish implements treatyv1.RevocationServiceServer.
func (s *Service) Publish(ctx context.Context, req *treatyv1.PublishRequest) (*treatyv1.PublishResponse, error) {
	if err := validatePublish(req); err != nil {
		return nil, edge.Status(s.logger, err)
	}
	seqs, err := s.log.Publish(ctx, req.GetEntries())
	if err != nil {
		return nil, edge.Status(s.logger, err)
	}
	return &treatyv1.PublishResponse{Sequences: seqs}, nil
}

// Snapshot implements treatyv1.RevocationServiceServer.
func (s *Service) Snapshot(context.Context, *treatyv1.SnapshotRequest) (*treatyv1.SnapshotResponse, error) {
	return &treatyv1.SnapshotResponse{State: s.log.State().Proto()}, nil
}

// Subscribe implements treatyv1.RevocationServiceServer: a heartbeat first, then every event after
// the requested sequence in order, then live events, with a heartbeat whenever the interval passes.
// Each stream reads the shared log at its own pace, so a slow subscriber delays nobody else.
func (s *Service) Subscribe(req *treatyv1.SubscribeRequest, stream grpc.ServerStreamingServer[treatyv1.SubscribeResponse]) error {
	ctx := stream.Context()
	tick := time.NewTicker(s.heartbeat)
	defer tick.Stop()
	heartbeat := func() error {
		return stream.Send(&treatyv1.SubscribeResponse{Message: &treatyv1.SubscribeResponse_Heartbeat{Heartbeat: &treatyv1.Heartbeat{
			Epoch: s.log.Epoch(), HeadSequence: s.log.Head(), Time: timestamppb.Now(),
		}}})
	}
	if err := heartbeat(); err != nil {
		return err
	}
	next := req.GetAfterSequence()
	for {
		changed := s.log.Changed() // before reading, so no append is missed
		events, err := s.log.Read(next, readBatch)
		if err != nil {
			return edge.Status(s.logger, err)
		}
		for _, ev := range events {
			if err := stream.Send(&treatyv1.SubscribeResponse{Message: &treatyv1.SubscribeResponse_Event{Event: ev}}); err != nil {
				return err
			}
			next = ev.GetSequence()
		}
		if len(events) > 0 {
			select {
			case <-tick.C:
				if err := heartbeat(); err != nil {
					return err
				}
			default:
			}
			continue
		}
		select {
		case <-changed:
		case <-tick.C:
			if err := heartbeat(); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		case <-s.stop:
			return status.Error(codes.Unavailable, "the revoker is shutting down; resubscribe after your last sequence")
		}
	}
}
