// Package inventorysvc is the gRPC adapter of the registry's bulk operations: it validates
// InventoryService requests (bulk import and export of the inventory, the offboarding workflow),
// calls the registry domain package and turns its answers and errors into responses and statuses.
package inventorysvc

import (
	"context"
	"log/slog"
	"sync"

	"google.golang.org/grpc"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/services/edge"
)

// Config configures a Service.
type Config struct {
	// Registry is the domain the service exposes.
	Registry *registry.Registry
	// Logger receives internal errors; defaults to slog.Default().
	Logger *slog.Logger
}

// Service implements treatyv1.InventoryServiceServer.
type Service struct {
	treatyv1.UnimplementedInventoryServiceServer
	reg *registry.Registry
	log *slog.Logger
}

var _ treatyv1.InventoryServiceServer = (*Service)(nil)

// New returns a Service over cfg.Registry.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{reg: cfg.Registry, log: cfg.Logger}
}

// Register registers the service with r.
func (s *Service) Register(r grpc.ServiceRegistrar) { treatyv1.RegisterInventoryServiceServer(r, s) }

// RunOffboarding implements treatyv1.InventoryServiceServer.
func (s *Service) RunOffboarding(req *treatyv1.RunOffboardingRequest, stream grpc.ServerStreamingServer[treatyv1.RunOffboardingResponse]) error {
	if err := validateRunOffboarding(req); err != nil {
		return edge.Status(s.log, err)
	}
	// Progress is sent as it comes, but never holds the workflow up: a slow client misses
	// intermediate reports, not revocations.
	var (
		mu      sync.Mutex
		sendErr error
	)
	progress := func(p registry.OffboardProgress) {
		if !mu.TryLock() {
			return
		}
		defer mu.Unlock()
		if sendErr == nil {
			sendErr = stream.Send(&treatyv1.RunOffboardingResponse{Message: &treatyv1.RunOffboardingResponse_Progress{
				Progress: &treatyv1.OffboardingProgress{Step: p.Step, Done: p.Done, Total: p.Total},
			}})
		}
	}
	o, err := s.reg.Offboard(stream.Context(), req.GetPartnerId(), req.GetReason(), req.GetActor(), progress)
	if err != nil {
		return edge.Status(s.log, err)
	}
	mu.Lock()
	defer mu.Unlock()
	return stream.Send(&treatyv1.RunOffboardingResponse{Message: &treatyv1.RunOffboardingResponse_Offboarding{
		Offboarding: offboardingToProto(o),
	}})
}

// GetOffboarding implements treatyv1.InventoryServiceServer.
func (s *Service) GetOffboarding(ctx context.Context, req *treatyv1.GetOffboardingRequest) (*treatyv1.GetOffboardingResponse, error) {
	if err := validateGetOffboarding(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	o, err := s.reg.GetOffboarding(ctx, req.GetPartnerId())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.GetOffboardingResponse{Offboarding: offboardingToProto(o)}, nil
}
