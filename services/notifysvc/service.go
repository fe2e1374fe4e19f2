// Package notifysvc is the gRPC edge of the webhook notifier: NotifyService over package notify.
package notifysvc

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/notify"
	"github.com/treaty-dev/treaty/services/edge"
)

// Config configures the Service.
type Config struct {
	// Notifier is the webhook notifier; required. The server assembly opens it and runs it.
	Notifier *notify.Notifier
	// Logger receives internal errors; defaults to slog.Default().
	Logger *slog.Logger
}

// Service implements treatyv1.NotifyServiceServer.
type Service struct {
	treatyv1.UnimplementedNotifyServiceServer
	n   *notify.Notifier
	log *slog.Logger
}

var _ treatyv1.NotifyServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{n: cfg.Notifier, log: cfg.Logger.With("service", "notify")}
}

// Register registers the service with a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { treatyv1.RegisterNotifyServiceServer(r, s) }

// ListDeliveries implements treatyv1.NotifyServiceServer: one page of the delivery log, newest
// first.
func (s *Service) ListDeliveries(ctx context.Context, req *treatyv1.ListDeliveriesRequest) (*treatyv1.ListDeliveriesResponse, error) {
	if err := validateList(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	page, next, err := s.n.ListDeliveries(ctx, query(req))
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	out := &treatyv1.ListDeliveriesResponse{NextPageToken: next, Endpoints: s.n.Endpoints()}
	for _, d := range page {
		out.Deliveries = append(out.Deliveries, deliveryProto(d))
	}
	return out, nil
}

// SendTest implements treatyv1.NotifyServiceServer: queues a test notification for every
// endpoint.
func (s *Service) SendTest(ctx context.Context, req *treatyv1.SendTestRequest) (*treatyv1.SendTestResponse, error) {
	if err := validateTest(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	id, err := s.n.SendTest(ctx, req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.SendTestResponse{NotificationId: id, Endpoints: s.n.Endpoints()}, nil
}

// RetryDeliveries implements treatyv1.NotifyServiceServer: queues one dead delivery, or every
// one, again.
func (s *Service) RetryDeliveries(ctx context.Context, req *treatyv1.RetryDeliveriesRequest) (*treatyv1.RetryDeliveriesResponse, error) {
	if err := validateRetry(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	k, err := s.n.RetryDead(ctx, req.GetDeliveryId())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.RetryDeliveriesResponse{Retried: int32(k)}, nil
}
