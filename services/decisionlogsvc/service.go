// Package decisionlogsvc is the gRPC edge of the decision log: DecisionLogService over package
// decisionlog.
package decisionlogsvc

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"google.golang.org/grpc"

	"github.com/treaty-dev/treaty/decisionlog"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/edge"
)

// Config configures the Service.
type Config struct {
	// Log is the decision log; required. The server assembly opens it (as the PDP's Recorder) and
	// closes it after the server has stopped.
	Log *decisionlog.Log
	// Logger receives internal errors; defaults to slog.Default().
	Logger *slog.Logger
}

// Service implements treatyv1.DecisionLogServiceServer.
type Service struct {
	treatyv1.UnimplementedDecisionLogServiceServer
	log      *decisionlog.Log
	logger   *slog.Logger
	stopOnce sync.Once
	stop     chan struct{}
}

var _ treatyv1.DecisionLogServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{log: cfg.Log, logger: cfg.Logger.With("service", "decisionlog"), stop: make(chan struct{})}
}

// Register registers the service with a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { treatyv1.RegisterDecisionLogServiceServer(r, s) }

// Close ends every open tail with UNAVAILABLE, so that a graceful shutdown does not wait for
// streams that would otherwise never end.
func (s *Service) Close() { s.stopOnce.Do(func() { close(s.stop) }) }

// errShuttingDown ends tails at Close.
var errShuttingDown = errors.New("the server is shutting down")

// ListDecisions implements treatyv1.DecisionLogServiceServer: one page of the log, oldest first,
// with the count of decisions left out of it.
func (s *Service) ListDecisions(_ context.Context, req *treatyv1.ListDecisionsRequest) (*treatyv1.ListDecisionsResponse, error) {
	if err := validateList(req); err != nil {
		return nil, edge.Status(s.logger, err)
	}
	page, err := s.log.List(query(req))
	if err != nil {
		return nil, edge.Status(s.logger, err)
	}
	return listResponse(page, s.log.Stats()), nil
}

// TailDecisions implements treatyv1.DecisionLogServiceServer: the latest backlog records, then
// each record as it is written, until the caller leaves, falls too far behind (UNAVAILABLE), or
// the server stops (UNAVAILABLE).
func (s *Service) TailDecisions(req *treatyv1.TailDecisionsRequest, stream grpc.ServerStreamingServer[treatyv1.TailDecisionsResponse]) error {
	if err := validateTail(req); err != nil {
		return edge.Status(s.logger, err)
	}
	tail, err := s.log.Tail(int(req.GetBacklog()))
	if err != nil {
		return edge.Status(s.logger, err)
	}
	defer tail.Close()
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	go func() {
		select {
		case <-s.stop:
			cancel(errShuttingDown)
		case <-ctx.Done():
		}
	}()
	for {
		e, err := tail.Next(ctx)
		switch {
		case errors.Is(context.Cause(ctx), errShuttingDown):
			return edge.Status(s.logger, decisionlog.ErrClosed)
		case stream.Context().Err() != nil:
			return nil // the caller left
		case err != nil:
			return edge.Status(s.logger, err)
		}
		if err := stream.Send(&treatyv1.TailDecisionsResponse{Decision: e.Proto()}); err != nil {
			return err
		}
	}
}
