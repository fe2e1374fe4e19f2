// Package auditsvc is the gRPC edge of the registry's audit trail: AuditService over the
// registry's QueryAudit and VerifyAudit.
package auditsvc

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/services/edge"
)

// DefaultFollowInterval is how often a following export looks for new records by default. The
// trail grows with admin changes, seconds apart at most, so polling costs little and needs no
// hook in the registry's write path.
const DefaultFollowInterval = time.Second

// exportPage is how many records an export reads per store transaction.
const exportPage = 1000

// Config configures the Service.
type Config struct {
	// Registry holds the audit trail; required.
	Registry *registry.Registry
	// FollowInterval is how often a following export polls for new records; defaults to
	// DefaultFollowInterval.
	FollowInterval time.Duration
	// Logger receives internal errors; defaults to slog.Default().
	Logger *slog.Logger
}

// Service implements treatyv1.AuditServiceServer.
type Service struct {
	treatyv1.UnimplementedAuditServiceServer
	reg      *registry.Registry
	interval time.Duration
	logger   *slog.Logger
	stopOnce sync.Once
	stop     chan struct{}
}

var _ treatyv1.AuditServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FollowInterval <= 0 {
		cfg.FollowInterval = DefaultFollowInterval
	}
	return &Service{reg: cfg.Registry, interval: cfg.FollowInterval, logger: cfg.Logger.With("service", "audit"),
		stop: make(chan struct{})}
}

// Register registers the service with a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { treatyv1.RegisterAuditServiceServer(r, s) }

// Close ends every following export with UNAVAILABLE, so that a graceful shutdown does not wait
// for streams that would otherwise never end.
func (s *Service) Close() { s.stopOnce.Do(func() { close(s.stop) }) }

// ListAuditRecords implements treatyv1.AuditServiceServer.
func (s *Service) ListAuditRecords(ctx context.Context, req *treatyv1.ListAuditRecordsRequest) (*treatyv1.ListAuditRecordsResponse, error) {
	after, err := validateList(req)
	if err != nil {
		return nil, edge.Status(s.logger, err)
	}
	recs, more, err := s.reg.QueryAudit(ctx, registry.AuditQuery{After: after, Limit: int(req.GetPageSize()), Target: req.GetTarget()})
	if err != nil {
		return nil, edge.Status(s.logger, err)
	}
	resp := &treatyv1.ListAuditRecordsResponse{Records: make([]*treatyv1.AuditRecord, len(recs))}
	for i, rec := range recs {
		resp.Records[i] = recordProto(rec)
	}
	if more {
		resp.NextPageToken = pageToken(recs[len(recs)-1].Sequence)
	}
	return resp, nil
}

// ExportAudit implements treatyv1.AuditServiceServer: the records after after_sequence, then,
// with follow, each new one, polled every FollowInterval.
func (s *Service) ExportAudit(req *treatyv1.ExportAuditRequest, stream grpc.ServerStreamingServer[treatyv1.ExportAuditResponse]) error {
	ctx := stream.Context()
	after := req.GetAfterSequence()
	var tick *time.Ticker
	for {
		recs, more, err := s.reg.QueryAudit(ctx, registry.AuditQuery{After: after, Limit: exportPage})
		if err != nil {
			if ctx.Err() != nil {
				return nil // the caller left
			}
			return edge.Status(s.logger, err)
		}
		for _, rec := range recs {
			if err := stream.Send(&treatyv1.ExportAuditResponse{Record: recordProto(rec)}); err != nil {
				return err
			}
			after = rec.Sequence
		}
		if more {
			continue
		}
		if !req.GetFollow() {
			return nil
		}
		if tick == nil {
			tick = time.NewTicker(s.interval)
			defer tick.Stop()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.stop:
			return edge.Status(s.logger, fail.Unavailablef(errShuttingDown, "the server is shutting down; resume with after_sequence %d", after))
		case <-tick.C:
		}
	}
}

// errShuttingDown ends following exports at Close.
var errShuttingDown = errors.New("audit export closed")

// VerifyAudit implements treatyv1.AuditServiceServer.
func (s *Service) VerifyAudit(ctx context.Context, req *treatyv1.VerifyAuditRequest) (*treatyv1.VerifyAuditResponse, error) {
	anchor, err := validateVerify(req)
	if err != nil {
		return nil, edge.Status(s.logger, err)
	}
	v, err := s.reg.VerifyAudit(ctx, anchor)
	if err != nil {
		return nil, edge.Status(s.logger, err)
	}
	return verificationProto(v), nil
}

// pageToken renders the sequence a next page starts after.
func pageToken(after uint64) string { return "a" + strconv.FormatUint(after, 10) }
