package registrysvc

import (
	"context"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/edge"
)

// The lifecycle transitions and updates of partners and integrations (issue 6).

// ApprovePartner implements treatyv1.RegistryServiceServer.
func (s *Service) ApprovePartner(ctx context.Context, req *treatyv1.ApprovePartnerRequest) (*treatyv1.ApprovePartnerResponse, error) {
	if err := validateApprove(req.GetId(), req.GetApprovedBy(), "", req.GetActor()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	p, seq, err := s.reg.ApprovePartner(ctx, req.GetId(), req.GetApprovedBy(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.ApprovePartnerResponse{Partner: partnerToProto(p), Sequence: seq}, nil
}

// ActivatePartner implements treatyv1.RegistryServiceServer.
func (s *Service) ActivatePartner(ctx context.Context, req *treatyv1.ActivatePartnerRequest) (*treatyv1.ActivatePartnerResponse, error) {
	if err := validateStep(req.GetId(), req.GetActor()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	p, seq, err := s.reg.ActivatePartner(ctx, req.GetId(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.ActivatePartnerResponse{Partner: partnerToProto(p), Sequence: seq}, nil
}

// ReactivatePartner implements treatyv1.RegistryServiceServer.
func (s *Service) ReactivatePartner(ctx context.Context, req *treatyv1.ReactivatePartnerRequest) (*treatyv1.ReactivatePartnerResponse, error) {
	if err := validateEndPartner(req.GetId(), req.GetReason(), req.GetActor()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	p, seq, err := s.reg.ReactivatePartner(ctx, req.GetId(), req.GetReason(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.ReactivatePartnerResponse{Partner: partnerToProto(p), Sequence: seq}, nil
}

// UpdatePartner implements treatyv1.RegistryServiceServer.
func (s *Service) UpdatePartner(ctx context.Context, req *treatyv1.UpdatePartnerRequest) (*treatyv1.UpdatePartnerResponse, error) {
	if err := validateUpdatePartner(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	p, seq, err := s.reg.UpdatePartner(ctx, partnerFromProto(req.GetPartner()), req.GetUpdateMask().GetPaths(), req.GetReason(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.UpdatePartnerResponse{Partner: partnerToProto(p), Sequence: seq}, nil
}

// ApproveIntegration implements treatyv1.RegistryServiceServer.
func (s *Service) ApproveIntegration(ctx context.Context, req *treatyv1.ApproveIntegrationRequest) (*treatyv1.ApproveIntegrationResponse, error) {
	if err := validateApprove(req.GetId(), req.GetApprovedBy(), req.GetApprovalTicket(), req.GetActor()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	i, seq, err := s.reg.ApproveIntegration(ctx, req.GetId(), req.GetApprovedBy(), req.GetApprovalTicket(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.ApproveIntegrationResponse{Integration: integrationToProto(i), Sequence: seq}, nil
}

// ActivateIntegration implements treatyv1.RegistryServiceServer.
func (s *Service) ActivateIntegration(ctx context.Context, req *treatyv1.ActivateIntegrationRequest) (*treatyv1.ActivateIntegrationResponse, error) {
	if err := validateStep(req.GetId(), req.GetActor()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	i, seq, err := s.reg.ActivateIntegration(ctx, req.GetId(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.ActivateIntegrationResponse{Integration: integrationToProto(i), Sequence: seq}, nil
}

// SuspendIntegration implements treatyv1.RegistryServiceServer.
func (s *Service) SuspendIntegration(ctx context.Context, req *treatyv1.SuspendIntegrationRequest) (*treatyv1.SuspendIntegrationResponse, error) {
	if err := validateEndPartner(req.GetId(), req.GetReason(), req.GetActor()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	i, seq, err := s.reg.SuspendIntegration(ctx, req.GetId(), req.GetReason(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.SuspendIntegrationResponse{Integration: integrationToProto(i), Sequence: seq}, nil
}

// ReactivateIntegration implements treatyv1.RegistryServiceServer.
func (s *Service) ReactivateIntegration(ctx context.Context, req *treatyv1.ReactivateIntegrationRequest) (*treatyv1.ReactivateIntegrationResponse, error) {
	if err := validateEndPartner(req.GetId(), req.GetReason(), req.GetActor()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	i, seq, err := s.reg.ReactivateIntegration(ctx, req.GetId(), req.GetReason(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.ReactivateIntegrationResponse{Integration: integrationToProto(i), Sequence: seq}, nil
}

// UpdateIntegration implements treatyv1.RegistryServiceServer.
func (s *Service) UpdateIntegration(ctx context.Context, req *treatyv1.UpdateIntegrationRequest) (*treatyv1.UpdateIntegrationResponse, error) {
	if err := validateUpdateIntegration(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	i, seq, err := s.reg.UpdateIntegration(ctx, integrationFromProto(req.GetIntegration()), req.GetUpdateMask().GetPaths(), req.GetReason(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.UpdateIntegrationResponse{Integration: integrationToProto(i), Sequence: seq}, nil
}

// RecertifyIntegration implements treatyv1.RegistryServiceServer.
func (s *Service) RecertifyIntegration(ctx context.Context, req *treatyv1.RecertifyIntegrationRequest) (*treatyv1.RecertifyIntegrationResponse, error) {
	if err := validateRecertify(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	i, err := s.reg.RecertifyIntegration(ctx, req.GetId(), req.GetReason(), req.GetActor())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.RecertifyIntegrationResponse{Integration: integrationToProto(i)}, nil
}
