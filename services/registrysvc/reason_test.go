package registrysvc_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// TestReasonsOverGRPC: removing a key and revoking a client secret without a reason are
// INVALID_ARGUMENT naming reason; an optional reason that breaks the rules is refused the same
// way; a valid one reaches the audit trail.
func TestReasonsOverGRPC(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	f.mustPartner(t, "acme")
	f.mustIntegration(t, "orders", "acme")
	_, keyPEM := publicKey(t)
	w := f.mustWorkload(t, "bot", "orders", keyPEM)
	kid := w.GetWorkload().GetPublicKeys()[0].GetKeyId()
	cs, err := f.client.CreateClientSecret(ctx, &treatyv1.CreateClientSecretRequest{WorkloadId: "bot", Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	secretID := cs.GetClientSecret().GetId()
	long := strings.Repeat("x", 1025)
	_, otherPEM := publicKey(t)

	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"remove key without a reason", func() error {
			_, err := f.client.RemoveWorkloadKey(ctx, &treatyv1.RemoveWorkloadKeyRequest{Id: "bot", KeyId: kid, Actor: "alice"})
			return err
		}},
		{"remove key with a blank reason", func() error {
			_, err := f.client.RemoveWorkloadKey(ctx, &treatyv1.RemoveWorkloadKeyRequest{Id: "bot", KeyId: kid, Reason: " \t", Actor: "alice"})
			return err
		}},
		{"revoke secret without a reason", func() error {
			_, err := f.client.RevokeClientSecret(ctx, &treatyv1.RevokeClientSecretRequest{WorkloadId: "bot", SecretId: secretID, Actor: "alice"})
			return err
		}},
		{"revoke secret with a too long reason", func() error {
			_, err := f.client.RevokeClientSecret(ctx, &treatyv1.RevokeClientSecretRequest{WorkloadId: "bot", SecretId: secretID, Reason: long, Actor: "alice"})
			return err
		}},
		{"create workload with a too long reason", func() error {
			_, err := f.client.CreateWorkload(ctx, &treatyv1.CreateWorkloadRequest{Id: "bot2", IntegrationId: "orders", PublicKeyPem: otherPEM, Reason: long, Actor: "alice"})
			return err
		}},
		{"add key with a control character", func() error {
			_, err := f.client.AddWorkloadKey(ctx, &treatyv1.AddWorkloadKeyRequest{Id: "bot", PublicKeyPem: otherPEM, Reason: "a\x00b", Actor: "alice"})
			return err
		}},
		{"create secret with a too long reason", func() error {
			_, err := f.client.CreateClientSecret(ctx, &treatyv1.CreateClientSecretRequest{WorkloadId: "bot", Reason: long, Actor: "alice"})
			return err
		}},
		{"put policy with a too long reason", func() error {
			_, err := f.client.PutPolicy(ctx, &treatyv1.PutPolicyRequest{PartnerId: "acme", Text: noWrites, Reason: long, Actor: "alice"})
			return err
		}},
		{"create partner with a too long reason", func() error {
			_, err := f.client.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Partner: partnerProto("globex"), Reason: long, Actor: "alice"})
			return err
		}},
		{"create integration with a too long reason", func() error {
			_, err := f.client.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Integration: integrationProto("billing", "acme"), Reason: long, Actor: "alice"})
			return err
		}},
		{"update partner with a too long reason", func() error {
			_, err := f.client.UpdatePartner(ctx, &treatyv1.UpdatePartnerRequest{Partner: &treatyv1.Partner{Id: "acme", Etag: "x", OwnerTeam: "y"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"owner_team"}}, Reason: long, Actor: "alice"})
			return err
		}},
		{"update integration with a too long reason", func() error {
			_, err := f.client.UpdateIntegration(ctx, &treatyv1.UpdateIntegrationRequest{Integration: &treatyv1.Integration{Id: "orders", Etag: "x", Owner: "y"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"owner"}}, Reason: long, Actor: "alice"})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkStatus(t, tc.call(), codes.InvalidArgument, "reason") })
	}

	// With reasons, the same calls succeed and the reasons are what the audit trail records.
	if _, err := f.client.AddWorkloadKey(ctx, &treatyv1.AddWorkloadKeyRequest{Id: "bot", PublicKeyPem: otherPEM, Reason: "rotation R-7", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.RemoveWorkloadKey(ctx, &treatyv1.RemoveWorkloadKeyRequest{Id: "bot", KeyId: kid, Reason: "rotation R-7 done", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.RevokeClientSecret(ctx, &treatyv1.RevokeClientSecretRequest{WorkloadId: "bot", SecretId: secretID, Reason: "leaked in a log", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.PutPolicy(ctx, &treatyv1.PutPolicyRequest{PartnerId: "acme", Text: noWrites, Reason: "read-only until audit", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	recs, err := f.reg.ListAudit(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range recs {
		got[r.Action] = r.Reason
	}
	for action, reason := range map[string]string{
		"workload.key.add": "rotation R-7", "workload.key.remove": "rotation R-7 done",
		"workload.client_secret.revoke": "leaked in a log", "policy.put": "read-only until audit",
		"workload.client_secret.create": "client secret created", "workload.create": "workload created",
	} {
		if got[action] != reason {
			t.Errorf("%s recorded reason %q, want %q", action, got[action], reason)
		}
	}
}
