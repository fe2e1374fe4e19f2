package registrysvc

import (
	"fmt"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/registry"
)

// Converters between the registry's domain types, their protos, and the issuer's view of them.
// Output-only fields of a create request (state, times, etag) are ignored, as the API says.

func partnerFromProto(p *treatyv1.Partner) registry.Partner {
	return registry.Partner{
		ID: p.GetId(), DisplayName: p.GetDisplayName(), OwnerTeam: p.GetOwnerTeam(),
		ContractEnd: p.GetContractEndTime().AsTime(), RiskTier: p.GetRiskTier(),
	}
}

func partnerToProto(p registry.Partner) *treatyv1.Partner {
	return &treatyv1.Partner{
		Id: p.ID, DisplayName: p.DisplayName, OwnerTeam: p.OwnerTeam,
		ContractEndTime: timestamppb.New(p.ContractEnd), State: p.State, RiskTier: p.RiskTier,
		CreateTime: timestamppb.New(p.Created), UpdateTime: timestamppb.New(p.Updated), Etag: p.Etag,
	}
}

func integrationFromProto(i *treatyv1.Integration) registry.Integration {
	return registry.Integration{
		ID: i.GetId(), PartnerID: i.GetPartnerId(), AllowedScopes: i.GetAllowedScopes(), Audiences: i.GetAudiences(),
		MaxTTL: i.GetMaxCredentialTtl().AsDuration(), ClientAuthMethods: i.GetAllowedClientAuthMethods(),
		SenderConstraint: i.GetSenderConstraint(),
	}
}

func integrationToProto(i registry.Integration) *treatyv1.Integration {
	return &treatyv1.Integration{
		Id: i.ID, PartnerId: i.PartnerID, AllowedScopes: i.AllowedScopes, Audiences: i.Audiences,
		MaxCredentialTtl: durationpb.New(i.MaxTTL), State: i.State,
		AllowedClientAuthMethods: i.ClientAuthMethods, SenderConstraint: i.SenderConstraint,
		CreateTime: timestamppb.New(i.Created), UpdateTime: timestamppb.New(i.Updated), Etag: i.Etag,
	}
}

func workloadToProto(w registry.Workload) *treatyv1.Workload {
	keys := make([]*treatyv1.WorkloadKey, len(w.Keys))
	for i, k := range w.Keys {
		keys[i] = &treatyv1.WorkloadKey{KeyId: k.KeyID, Algorithm: k.Algorithm, PublicKeyPem: k.PublicKeyPEM}
	}
	return &treatyv1.Workload{
		Id: w.ID, IntegrationId: w.IntegrationID, PartnerId: w.PartnerID, PublicKeys: keys, State: w.State,
		CreateTime: timestamppb.New(w.Created), UpdateTime: timestamppb.New(w.Updated), Etag: w.Etag,
		TlsClientAuth: tlsToProto(w.TLS),
	}
}

func tlsToProto(t *registry.TLSSubject) *treatyv1.TlsClientAuth {
	if t == nil {
		return nil
	}
	return &treatyv1.TlsClientAuth{SubjectDn: t.SubjectDN, SanDns: t.SANDNS, SanUri: t.SANURI}
}

func tlsFromProto(t *treatyv1.TlsClientAuth) *registry.TLSSubject {
	if t == nil {
		return nil
	}
	return &registry.TLSSubject{SubjectDN: t.GetSubjectDn(), SANDNS: t.GetSanDns(), SANURI: t.GetSanUri()}
}

func policyToProto(p registry.Policy) *treatyv1.Policy {
	return &treatyv1.Policy{
		Id: p.ID, PartnerId: p.PartnerID, Version: p.Version, Mode: p.Mode, Text: p.Text, Current: p.Current,
		CreateTime: timestamppb.New(p.Created), Actor: p.Actor,
	}
}

func convertAll[T any, P any](items []T, conv func(T) P) []P {
	out := make([]P, len(items))
	for i, item := range items {
		out[i] = conv(item)
	}
	return out
}

// workloadForIssuer turns a workload from the registry's API into the issuer's view, parsing each
// key and checking it against its key id, so the issuer never verifies with a key other than the
// one registered under that id.
func workloadForIssuer(w *treatyv1.Workload) (issuer.Workload, error) {
	keys := make([]issuer.WorkloadKey, len(w.GetPublicKeys()))
	for i, k := range w.GetPublicKeys() {
		pub, err := registry.Key{KeyID: k.GetKeyId(), Algorithm: k.GetAlgorithm(), PublicKeyPEM: k.GetPublicKeyPem()}.PublicKey()
		if err != nil {
			return issuer.Workload{}, fmt.Errorf("registry returned an unusable key for workload %q: %w", w.GetId(), err)
		}
		keys[i] = issuer.WorkloadKey{KeyID: k.GetKeyId(), Algorithm: k.GetAlgorithm(), Public: pub}
	}
	out := issuer.Workload{
		ID: w.GetId(), IntegrationID: w.GetIntegrationId(), PartnerID: w.GetPartnerId(),
		Active: w.GetState() == treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE, Keys: keys,
	}
	if t := w.GetTlsClientAuth(); t != nil {
		out.TLS = &issuer.TLSSubject{SubjectDN: t.GetSubjectDn(), SANDNS: t.GetSanDns(), SANURI: t.GetSanUri()}
	}
	return out, nil
}

func integrationForIssuer(i *treatyv1.Integration) issuer.Integration {
	return issuer.Integration{
		ID: i.GetId(), PartnerID: i.GetPartnerId(),
		Active:        i.GetState() == treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE,
		AllowedScopes: i.GetAllowedScopes(), Audiences: i.GetAudiences(), MaxTTL: i.GetMaxCredentialTtl().AsDuration(),
		ClientAuthMethods: methodsForIssuer(i.GetAllowedClientAuthMethods()),
		SenderConstraint:  constraintForIssuer(i.GetSenderConstraint()),
	}
}

// methodsForIssuer names the methods as the issuer does (RFC 8414 names). An integration the
// registry returns without methods allows none, so the issuer fails closed.
func methodsForIssuer(ms []treatyv1.ClientAuthMethod) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		if m != treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_UNSPECIFIED {
			out = append(out, registry.MethodName(m))
		}
	}
	return out
}

// constraintForIssuer names the constraint as the issuer does; one this adapter does not know is
// passed on as its proto name, which the issuer refuses (it fails closed).
func constraintForIssuer(c treatyv1.SenderConstraint) string {
	switch c {
	case treatyv1.SenderConstraint_SENDER_CONSTRAINT_UNSPECIFIED, treatyv1.SenderConstraint_SENDER_CONSTRAINT_NONE:
		return issuer.ConstraintNone
	case treatyv1.SenderConstraint_SENDER_CONSTRAINT_DPOP:
		return issuer.ConstraintDPoP
	case treatyv1.SenderConstraint_SENDER_CONSTRAINT_MTLS:
		return issuer.ConstraintMTLS
	case treatyv1.SenderConstraint_SENDER_CONSTRAINT_DPOP_OR_MTLS:
		return issuer.ConstraintDPoPOrMTLS
	}
	return c.String()
}

func partnerForIssuer(p *treatyv1.Partner) issuer.Partner {
	// A missing contract end reads as 1970: access has ended, so the issuer fails closed.
	return issuer.Partner{
		ID: p.GetId(), Active: p.GetState() == treatyv1.PartnerState_PARTNER_STATE_ACTIVE,
		ContractEnd: p.GetContractEndTime().AsTime(),
	}
}
