package registrysvc

import (
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

// The registry's proto converters, for other adapters that carry registry entities (the
// InventoryService's bulk import and export), so that every field the model gains flows through
// one conversion.

// PartnerToProto converts a partner to its proto message.
func PartnerToProto(p registry.Partner) *treatyv1.Partner { return partnerToProto(p) }

// PartnerFromProto converts a partner message to the domain's partner.
func PartnerFromProto(p *treatyv1.Partner) registry.Partner { return partnerFromProto(p) }

// IntegrationToProto converts an integration to its proto message.
func IntegrationToProto(i registry.Integration) *treatyv1.Integration { return integrationToProto(i) }

// IntegrationFromProto converts an integration message to the domain's integration.
func IntegrationFromProto(i *treatyv1.Integration) registry.Integration {
	return integrationFromProto(i)
}

// WorkloadToProto converts a workload to its proto message.
func WorkloadToProto(w registry.Workload) *treatyv1.Workload { return workloadToProto(w) }

// TLSFromProto converts a tls_client_auth message to the domain's subject (nil if unset).
func TLSFromProto(t *treatyv1.TlsClientAuth) *registry.TLSSubject { return tlsFromProto(t) }
