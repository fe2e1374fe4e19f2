// Package adminsvc is the gRPC edge of operating a running Treaty process: AdminService.
package adminsvc

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	"github.com/treaty-dev/treaty/backup"
	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/edge"
)

// Config configures the Service.
type Config struct {
	// Stores are the stores a backup copies, in the order it copies them: the revoker's last (see
	// package backup).
	Stores []backup.Source
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// Logger receives operational logs; defaults to slog.Default().
	Logger *slog.Logger
}

// Service implements treatyv1.AdminServiceServer.
type Service struct {
	treatyv1.UnimplementedAdminServiceServer
	cfg Config
	log *slog.Logger
}

var _ treatyv1.AdminServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("service", "admin")}
}

// Register registers the service with a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { treatyv1.RegisterAdminServiceServer(r, s) }

// Backup implements treatyv1.AdminServiceServer.
func (s *Service) Backup(_ context.Context, req *treatyv1.BackupRequest) (*treatyv1.BackupResponse, error) {
	if req.GetOutPath() == "" {
		return nil, edge.Status(s.log, fail.Invalidf("out_path", "out_path is required: an absolute path on the server for the backup file"))
	}
	start := s.cfg.Now()
	m, err := backup.Write(req.GetOutPath(), s.cfg.Stores, start)
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	resp := &treatyv1.BackupResponse{Path: req.GetOutPath()}
	var total uint64
	for _, e := range m.Stores {
		resp.Stores = append(resp.Stores, &treatyv1.BackupStore{Name: e.Name, SizeBytes: uint64(e.Size)})
		total += uint64(e.Size)
	}
	s.log.Info("backup written", "path", req.GetOutPath(), "stores", len(m.Stores), "bytes", total, "took", time.Since(start))
	return resp, nil
}
