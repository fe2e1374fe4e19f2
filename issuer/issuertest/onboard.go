package issuertest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// Integration describes an integration to create.
type Integration struct {
	ID        string
	PartnerID string
	// Scopes is the scope ceiling.
	Scopes    []string
	Audiences []string
	// MaxTTL is the longest lifetime of a credential under the integration; it must be positive
	// and within the deployment's maximum.
	MaxTTL time.Duration
	// ClientAuthMethods, if set, are the client authentication methods it allows (else the
	// partner's risk tier decides).
	ClientAuthMethods []treatyv1.ClientAuthMethod
	// SenderConstraint is the proof of possession its tokens require (unset: none).
	SenderConstraint treatyv1.SenderConstraint
	// Environment is the one environment its credentials are valid in (unset: production).
	Environment string
	// SourceRanges, if set, are the CIDR ranges its credentials may be used from.
	SourceRanges []string
}

// Workload is an onboarded workload and the private key it signs its client assertions with.
type Workload struct {
	ID            string
	IntegrationID string
	PartnerID     string
	// Key is the workload's Ed25519 private key; the registry holds its public half.
	Key ed25519.PrivateKey
	// Sequence is the feed sequence the workload's creation landed at.
	Sequence uint64
}

// CreatePartner registers an active partner whose contract ends at contractEnd (which the registry
// requires to be in the future), approved and activated in the same step (the registry's one-step
// shortcut), and returns the feed sequence of the change.
func (w *World) CreatePartner(id string, contractEnd time.Time) uint64 {
	w.tb.Helper()
	resp, err := w.Registry.CreatePartner(context.Background(), &treatyv1.CreatePartnerRequest{
		Partner: &treatyv1.Partner{
			Id: id, DisplayName: "Partner " + id, OwnerTeam: "partnerships",
			ContractEndTime: timestamppb.New(contractEnd),
		},
		Actor: Actor, Activate: true, ApprovedBy: Actor,
	})
	if err != nil {
		w.tb.Fatalf("CreatePartner %q: %v", id, err)
	}
	return resp.GetSequence()
}

// CreateIntegration registers an integration, approved and active at once, and returns the feed
// sequence of the change.
func (w *World) CreateIntegration(in Integration) uint64 {
	w.tb.Helper()
	if in.Environment == "" {
		in.Environment = "production"
	}
	resp, err := w.Registry.CreateIntegration(context.Background(), &treatyv1.CreateIntegrationRequest{
		Integration: &treatyv1.Integration{
			Id: in.ID, PartnerId: in.PartnerID, AllowedScopes: in.Scopes, Audiences: in.Audiences,
			MaxCredentialTtl: durationpb.New(in.MaxTTL), AllowedClientAuthMethods: in.ClientAuthMethods,
			SenderConstraint: in.SenderConstraint, Environment: in.Environment, SourceRanges: in.SourceRanges,
		},
		Actor: Actor, Activate: true, ApprovedBy: Actor,
	})
	if err != nil {
		w.tb.Fatalf("CreateIntegration %q: %v", in.ID, err)
	}
	return resp.GetSequence()
}

// CreateWorkload generates an Ed25519 key, registers a workload with its public half under
// integrationID, and returns the workload with its private key.
func (w *World) CreateWorkload(id, integrationID string) Workload {
	w.tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		w.tb.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		w.tb.Fatal(err)
	}
	resp, err := w.Registry.CreateWorkload(context.Background(), &treatyv1.CreateWorkloadRequest{
		Id: id, IntegrationId: integrationID, Actor: Actor,
		PublicKeyPem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	})
	if err != nil {
		w.tb.Fatalf("CreateWorkload %q: %v", id, err)
	}
	wl := resp.GetWorkload()
	return Workload{
		ID: wl.GetId(), IntegrationID: wl.GetIntegrationId(), PartnerID: wl.GetPartnerId(),
		Key: priv, Sequence: resp.GetSequence(),
	}
}

// SuspendPartner suspends a partner in the registry (which also blocks it in the feed) and
// returns the feed sequence of the block.
func (w *World) SuspendPartner(id string) uint64 {
	w.tb.Helper()
	resp, err := w.Registry.SuspendPartner(context.Background(), &treatyv1.SuspendPartnerRequest{
		Id: id, Reason: "suspended by a test", Actor: Actor,
	})
	if err != nil {
		w.tb.Fatalf("SuspendPartner %q: %v", id, err)
	}
	return resp.GetSequence()
}

// OffboardPartner terminates a partner in the registry (which also blocks it in the feed for good)
// and returns the feed sequence of the block.
func (w *World) OffboardPartner(id string) uint64 {
	w.tb.Helper()
	resp, err := w.Registry.OffboardPartner(context.Background(), &treatyv1.OffboardPartnerRequest{
		Id: id, Reason: "offboarded by a test", Actor: Actor,
	})
	if err != nil {
		w.tb.Fatalf("OffboardPartner %q: %v", id, err)
	}
	return resp.GetSequence()
}

// Revoke pulls the kill switch through the RevocationService: it revokes a credential or signing
// key, or blocks a workload, integration or partner. It returns the feed sequence of the
// revocation.
func (w *World) Revoke(kind treatyv1.TargetKind, id string) uint64 {
	w.tb.Helper()
	resp, err := w.Revocation.Revoke(context.Background(), &treatyv1.RevokeRequest{
		TargetKind: kind, TargetId: id, Reason: "revoked by a test", Actor: Actor,
	})
	if err != nil {
		w.tb.Fatalf("Revoke %s %q: %v", kind, id, err)
	}
	return resp.GetSequence()
}

// RevokeSigningKey revokes an issuer signing key and returns the feed sequence of the revocation.
func (w *World) RevokeSigningKey(kid string) uint64 {
	w.tb.Helper()
	return w.Revoke(treatyv1.TargetKind_TARGET_KIND_SIGNING_KEY, kid)
}

// Restore lifts a block on a workload, integration or partner through the RevocationService and
// returns the feed sequence of the restore.
func (w *World) Restore(kind treatyv1.TargetKind, id string) uint64 {
	w.tb.Helper()
	resp, err := w.Revocation.Restore(context.Background(), &treatyv1.RestoreRequest{
		TargetKind: kind, TargetId: id, Reason: "restored by a test", Actor: Actor,
	})
	if err != nil {
		w.tb.Fatalf("Restore %s %q: %v", kind, id, err)
	}
	return resp.GetSequence()
}
