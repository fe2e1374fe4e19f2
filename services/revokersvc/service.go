// Package revokersvc is the gRPC edge of the revoker: RevocationService on top of revoker.Log, and
// the client adapters other services use to publish into and follow the feed.
package revokersvc

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"

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
	// Identify, if set, names a subscriber for monitoring (Subscribers), for example by its
	// authenticated identity; an empty answer, or no Identify, names it by its IP address.
	Identify func(ctx context.Context) string
	// Logger receives operational logs.
	Logger *slog.Logger
}

// DefaultHeartbeat is the default heartbeat interval.
const DefaultHeartbeat = time.Second

// Service implements treatyv1.RevocationServiceServer.
type Service struct {
	treatyv1.UnimplementedRevocationServiceServer
	log       *revoker.Log
	heartbeat time.Duration
	logger    *slog.Logger
	stopOnce  sync.Once
	stop      chan struct{}
	hub       *hub

	identifyFn func(context.Context) string
	subs       subscribers // subscribers.go
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
	s := &Service{log: cfg.Log, heartbeat: cfg.Heartbeat, logger: cfg.Logger, stop: make(chan struct{}), identifyFn: cfg.Identify}
	s.hub = newHub(cfg.Log, cfg.Heartbeat, cfg.Logger, s.stop)
	return s
}

// Close ends every open subscription with UNAVAILABLE, so that a graceful shutdown does not wait
// for streams that would otherwise never end. Subscribers reconnect elsewhere or later.
func (s *Service) Close() {
	s.stopOnce.Do(func() {
		close(s.stop)
		s.hub.wakeAll() // after the close: a handler that wakes sees it
	})
}

// closed reports whether Close was called.
func (s *Service) closed() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// Register registers the service with a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { treatyv1.RegisterRevocationServiceServer(r, s) }

// Revoke implements treatyv1.RevocationServiceServer.
func (s *Service) Revoke(ctx context.Context, req *treatyv1.RevokeRequest) (*treatyv1.RevokeResponse, error) {
	if req.GetDryRun() {
		return s.dryRun(ctx, req)
	}
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

// RevokeAll implements treatyv1.RevocationServiceServer: the break-glass revocation of every
// credential issued before a sequence.
func (s *Service) RevokeAll(ctx context.Context, req *treatyv1.RevokeAllRequest) (*treatyv1.RevokeAllResponse, error) {
	if req.GetDryRun() {
		return s.revokeAllDryRun(ctx, req.GetBelowSequence())
	}
	r, err := validateRevokeAll(req)
	if err != nil {
		return nil, edge.Status(s.logger, err)
	}
	out, err := s.log.RevokeAll(ctx, r)
	if err != nil {
		return nil, edge.Status(s.logger, err)
	}
	return &treatyv1.RevokeAllResponse{Sequence: out.Sequence, BelowSequence: out.Below, AlreadyApplied: out.AlreadyApplied}, nil
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
