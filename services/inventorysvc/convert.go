package inventorysvc

import (
	"errors"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/services/registrysvc"
)

func offboardingToProto(o registry.Offboarding) *treatyv1.Offboarding {
	return &treatyv1.Offboarding{
		PartnerId: o.PartnerID, Reason: o.Reason, Actor: o.Actor, Step: o.Step,
		StartTime:              optionalTimestamp(o.Started),
		RevokedCredentials:     o.Revoked,
		LastRevocationSequence: o.LastRevocationSequence,
		RevokeTime:             optionalTimestamp(o.RevokeDone),
		RetiredIntegrations:    o.RetiredIntegrations, RetiredWorkloads: o.RetiredWorkloads,
		RetireTime:          optionalTimestamp(o.RetireDone),
		ConfirmTime:         optionalTimestamp(o.Confirmed),
		ConfirmedAtSequence: o.ConfirmedAtSequence,
		LiveCredentials:     o.LiveCredentials,
		TerminateTime:       optionalTimestamp(o.Terminated),
	}
}

func optionalTimestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// The registry's own converters, so every field of the model flows through import and export.
var (
	partnerToProto     = registrysvc.PartnerToProto
	integrationToProto = registrysvc.IntegrationToProto
	workloadToProto    = registrysvc.WorkloadToProto
)

// importFromProto converts an import's items. What the proto can carry but the domain cannot
// take (a missing contract end, unparsable source ranges, several public keys) is reported as
// item errors here, in the same form as the registry's.
func importFromProto(req *importRequest) (registry.Import, []registry.ImportError) {
	var (
		in   registry.Import
		errs []registry.ImportError
	)
	bad := func(kind string, i int, err error) {
		var fe *fail.Error
		if errors.As(err, &fe) {
			errs = append(errs, registry.ImportError{Kind: kind, Index: i, Field: fe.Field, Message: fe.Msg})
		}
	}
	in.Partners = make([]registry.Partner, len(req.partners))
	for i, m := range req.partners {
		p := registrysvc.PartnerFromProto(m)
		p.State, p.ApprovedBy = m.GetState(), m.GetApprovedBy()
		if m.GetContractEndTime() == nil {
			p.ContractEnd = time.Time{} // the registry's check names what is missing
		}
		in.Partners[i] = p
	}
	in.Integrations = make([]registry.Integration, len(req.integrations))
	for i, m := range req.integrations {
		if _, err := registry.ParseSourceRanges("integration.source_ranges", m.GetSourceRanges()); err != nil {
			bad(registry.ImportIntegrations, i, err)
		}
		it := registrysvc.IntegrationFromProto(m)
		it.State, it.ApprovedBy = m.GetState(), m.GetApprovedBy()
		in.Integrations[i] = it
	}
	in.Workloads = make([]registry.WorkloadSpec, len(req.workloads))
	for i, m := range req.workloads {
		spec := registry.WorkloadSpec{ID: m.GetId(), IntegrationID: m.GetIntegrationId(), TLS: registrysvc.TLSFromProto(m.GetTlsClientAuth())}
		if keys := m.GetPublicKeys(); len(keys) > 0 {
			spec.PublicKeyPEM = keys[0].GetPublicKeyPem() // the registry checks the first
			if len(keys) > 1 {
				bad(registry.ImportWorkloads, i, fail.Invalidf("workload.public_keys", "workload.public_keys has %d keys; import one and add more with AddWorkloadKey", len(keys)))
			}
		}
		in.Workloads[i] = spec
	}
	return in, errs
}
