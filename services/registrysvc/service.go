// Package registrysvc is the gRPC adapter of the registry: it validates RegistryService requests,
// calls the registry domain package and turns its answers and errors into responses and statuses.
// It also holds NewDirectory, the issuer's view of the registry over a RegistryService client.
package registrysvc

import (
	"context"
	"log/slog"

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

// Service implements treatyv1.RegistryServiceServer.
type Service struct {
	treatyv1.UnimplementedRegistryServiceServer
	reg *registry.Registry
	log *slog.Logger
}

var _ treatyv1.RegistryServiceServer = (*Service)(nil)

// New returns a Service over cfg.Registry.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{reg: cfg.Registry, log: cfg.Logger}
}

// Register registers the service with r.
func (s *Service) Register(r grpc.ServiceRegistrar) { treatyv1.RegisterRegistryServiceServer(r, s) }

// CreatePartner implements treatyv1.RegistryServiceServer.
func (s *Service) CreatePartner(ctx context.Context, req *treatyv1.CreatePartnerRequest) (*treatyv1.CreatePartnerResponse, error) {
	if err := validateCreatePartner(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	p, seq, err := s.reg.CreatePartner(ctx, partnerFromProto(req.GetPartner()), req.GetActor(),
		registry.CreateOptions{Activate: req.GetActivate(), ApprovedBy: req.GetApprovedBy(), Reason: req.GetReason()})
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.CreatePartnerResponse{Partner: partnerToProto(p), Sequence: seq}, nil
}

// GetPartner implements treatyv1.RegistryServiceServer.
func (s *Service) GetPartner(ctx context.Context, req *treatyv1.GetPartnerRequest) (*treatyv1.GetPartnerResponse, error) {
	if err := validateID("id", req.GetId()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	p, err := s.reg.GetPartner(ctx, req.GetId())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.GetPartnerResponse{Partner: partnerToProto(p)}, nil
}

// ListPartners implements treatyv1.RegistryServiceServer.
func (s *Service) ListPartners(ctx context.Context, req *treatyv1.ListPartnersRequest) (*treatyv1.ListPartnersResponse, error) {
	if err := validateListPartners(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	ps, next, err := s.reg.ListPartnersBy(ctx, partnerFilterFromProto(req), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.ListPartnersResponse{Partners: convertAll(ps, partnerToProto), NextPageToken: next}, nil
}

// SuspendPartner implements treatyv1.RegistryServiceServer.
func (s *Service) SuspendPartner(ctx context.Context, req *treatyv1.SuspendPartnerRequest) (*treatyv1.SuspendPartnerResponse, error) {
	if err := validateEndPartner(req.GetId(), req.GetReason(), req.GetActor()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	p, seq, err := s.reg.SuspendPartner(ctx, req.GetId(), req.GetReason(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.SuspendPartnerResponse{Partner: partnerToProto(p), Sequence: seq}, nil
}

// OffboardPartner implements treatyv1.RegistryServiceServer.
func (s *Service) OffboardPartner(ctx context.Context, req *treatyv1.OffboardPartnerRequest) (*treatyv1.OffboardPartnerResponse, error) {
	if err := validateEndPartner(req.GetId(), req.GetReason(), req.GetActor()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	p, seq, err := s.reg.OffboardPartner(ctx, req.GetId(), req.GetReason(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.OffboardPartnerResponse{Partner: partnerToProto(p), Sequence: seq}, nil
}

// CreateIntegration implements treatyv1.RegistryServiceServer.
func (s *Service) CreateIntegration(ctx context.Context, req *treatyv1.CreateIntegrationRequest) (*treatyv1.CreateIntegrationResponse, error) {
	if err := validateCreateIntegration(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	i, seq, err := s.reg.CreateIntegration(ctx, integrationFromProto(req.GetIntegration()), req.GetActor(),
		registry.CreateOptions{Activate: req.GetActivate(), ApprovedBy: req.GetApprovedBy(), Reason: req.GetReason()})
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.CreateIntegrationResponse{Integration: integrationToProto(i), Sequence: seq}, nil
}

// RetireIntegration implements treatyv1.RegistryServiceServer.
func (s *Service) RetireIntegration(ctx context.Context, req *treatyv1.RetireIntegrationRequest) (*treatyv1.RetireIntegrationResponse, error) {
	if err := validateRetire(req.GetId(), req.GetReason(), req.GetActor()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	i, seq, err := s.reg.RetireIntegration(ctx, req.GetId(), req.GetReason(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.RetireIntegrationResponse{Integration: integrationToProto(i), Sequence: seq}, nil
}

// GetIntegration implements treatyv1.RegistryServiceServer.
func (s *Service) GetIntegration(ctx context.Context, req *treatyv1.GetIntegrationRequest) (*treatyv1.GetIntegrationResponse, error) {
	if err := validateID("id", req.GetId()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	i, err := s.reg.GetIntegration(ctx, req.GetId())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.GetIntegrationResponse{Integration: integrationToProto(i)}, nil
}

// ListIntegrations implements treatyv1.RegistryServiceServer.
func (s *Service) ListIntegrations(ctx context.Context, req *treatyv1.ListIntegrationsRequest) (*treatyv1.ListIntegrationsResponse, error) {
	if err := validateListIntegrations(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	is, next, err := s.reg.ListIntegrationsBy(ctx, integrationFilterFromProto(req), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.ListIntegrationsResponse{Integrations: convertAll(is, integrationToProto), NextPageToken: next}, nil
}

// CreateWorkload implements treatyv1.RegistryServiceServer.
func (s *Service) CreateWorkload(ctx context.Context, req *treatyv1.CreateWorkloadRequest) (*treatyv1.CreateWorkloadResponse, error) {
	if err := validateCreateWorkload(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	spec := registry.WorkloadSpec{ID: req.GetId(), IntegrationID: req.GetIntegrationId(), PublicKeyPEM: req.GetPublicKeyPem(),
		TLS: tlsFromProto(req.GetTlsClientAuth())}
	w, seq, err := s.reg.CreateWorkloadFrom(ctx, spec, req.GetReason(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.CreateWorkloadResponse{Workload: workloadToProto(w), Sequence: seq}, nil
}

// RetireWorkload implements treatyv1.RegistryServiceServer.
func (s *Service) RetireWorkload(ctx context.Context, req *treatyv1.RetireWorkloadRequest) (*treatyv1.RetireWorkloadResponse, error) {
	if err := validateRetire(req.GetId(), req.GetReason(), req.GetActor()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	w, seq, err := s.reg.RetireWorkload(ctx, req.GetId(), req.GetReason(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.RetireWorkloadResponse{Workload: workloadToProto(w), Sequence: seq}, nil
}

// AddWorkloadKey implements treatyv1.RegistryServiceServer.
func (s *Service) AddWorkloadKey(ctx context.Context, req *treatyv1.AddWorkloadKeyRequest) (*treatyv1.AddWorkloadKeyResponse, error) {
	if err := validateAddWorkloadKey(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	w, seq, err := s.reg.AddWorkloadKey(ctx, req.GetId(), req.GetPublicKeyPem(), req.GetReason(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.AddWorkloadKeyResponse{Workload: workloadToProto(w), Sequence: seq}, nil
}

// RemoveWorkloadKey implements treatyv1.RegistryServiceServer.
func (s *Service) RemoveWorkloadKey(ctx context.Context, req *treatyv1.RemoveWorkloadKeyRequest) (*treatyv1.RemoveWorkloadKeyResponse, error) {
	if err := validateRemoveWorkloadKey(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	w, seq, err := s.reg.RemoveWorkloadKey(ctx, req.GetId(), req.GetKeyId(), req.GetReason(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.RemoveWorkloadKeyResponse{Workload: workloadToProto(w), Sequence: seq}, nil
}

// GetWorkload implements treatyv1.RegistryServiceServer.
func (s *Service) GetWorkload(ctx context.Context, req *treatyv1.GetWorkloadRequest) (*treatyv1.GetWorkloadResponse, error) {
	if err := validateID("id", req.GetId()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	basic, err := basicView(req.GetView())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	get := s.reg.GetWorkload
	if basic {
		get = s.reg.GetWorkloadRecord
	}
	w, err := get(ctx, req.GetId())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.GetWorkloadResponse{Workload: workloadToProto(w)}, nil
}

// CreateClientSecret implements treatyv1.RegistryServiceServer. The response carries the secret;
// nothing here logs it.
func (s *Service) CreateClientSecret(ctx context.Context, req *treatyv1.CreateClientSecretRequest) (*treatyv1.CreateClientSecretResponse, error) {
	if err := validateCreateClientSecret(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	cs, secret, err := s.reg.CreateClientSecret(ctx, req.GetWorkloadId(), req.GetTtl().AsDuration(), req.GetReason(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.CreateClientSecretResponse{ClientSecret: clientSecretToProto(cs), Secret: secret}, nil
}

// ListClientSecrets implements treatyv1.RegistryServiceServer.
func (s *Service) ListClientSecrets(ctx context.Context, req *treatyv1.ListClientSecretsRequest) (*treatyv1.ListClientSecretsResponse, error) {
	if err := validateID("workload_id", req.GetWorkloadId()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	list, err := s.reg.ListClientSecrets(ctx, req.GetWorkloadId())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.ListClientSecretsResponse{ClientSecrets: convertAll(list, clientSecretToProto)}, nil
}

// RevokeClientSecret implements treatyv1.RegistryServiceServer.
func (s *Service) RevokeClientSecret(ctx context.Context, req *treatyv1.RevokeClientSecretRequest) (*treatyv1.RevokeClientSecretResponse, error) {
	if err := validateRevokeClientSecret(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	cs, err := s.reg.RevokeClientSecret(ctx, req.GetWorkloadId(), req.GetSecretId(), req.GetReason(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.RevokeClientSecretResponse{ClientSecret: clientSecretToProto(cs)}, nil
}

// ListClientSecretVerifiers implements treatyv1.RegistryServiceServer.
func (s *Service) ListClientSecretVerifiers(ctx context.Context, req *treatyv1.ListClientSecretVerifiersRequest) (*treatyv1.ListClientSecretVerifiersResponse, error) {
	if err := validateID("workload_id", req.GetWorkloadId()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	vs, err := s.reg.ClientSecretVerifiers(ctx, req.GetWorkloadId())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.ListClientSecretVerifiersResponse{Verifiers: convertAll(vs, verifierToProto)}, nil
}

// ListWorkloads implements treatyv1.RegistryServiceServer.
func (s *Service) ListWorkloads(ctx context.Context, req *treatyv1.ListWorkloadsRequest) (*treatyv1.ListWorkloadsResponse, error) {
	if err := validateFilteredPage("integration_id", req.GetIntegrationId(), req.GetPageSize()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	ws, next, err := s.reg.ListWorkloads(ctx, req.GetIntegrationId(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.ListWorkloadsResponse{Workloads: convertAll(ws, workloadToProto), NextPageToken: next}, nil
}

// PutPolicy implements treatyv1.RegistryServiceServer.
func (s *Service) PutPolicy(ctx context.Context, req *treatyv1.PutPolicyRequest) (*treatyv1.PutPolicyResponse, error) {
	if err := validatePutPolicy(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	p, seq, err := s.reg.PutPolicy(ctx, req.GetPartnerId(), req.GetText(), req.GetMode(), req.GetReason(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.PutPolicyResponse{Policy: policyToProto(p), Sequence: seq}, nil
}

// GetPolicy implements treatyv1.RegistryServiceServer.
func (s *Service) GetPolicy(ctx context.Context, req *treatyv1.GetPolicyRequest) (*treatyv1.GetPolicyResponse, error) {
	if err := validatePolicyID(req.GetId()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	p, err := s.reg.GetPolicy(ctx, req.GetId())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.GetPolicyResponse{Policy: policyToProto(p)}, nil
}

// ListPolicies implements treatyv1.RegistryServiceServer.
func (s *Service) ListPolicies(ctx context.Context, req *treatyv1.ListPoliciesRequest) (*treatyv1.ListPoliciesResponse, error) {
	if err := validateFilteredPage("partner_id", req.GetPartnerId(), req.GetPageSize()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	ps, next, err := s.reg.ListPolicies(ctx, req.GetPartnerId(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.ListPoliciesResponse{Policies: convertAll(ps, policyToProto), NextPageToken: next}, nil
}
