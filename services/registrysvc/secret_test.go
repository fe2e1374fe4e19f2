package registrysvc_test

import (
	"context"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/registrysvc"
)

func TestClientSecretsOverGRPC(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	f.mustPartner(t, "acme")
	f.mustIntegration(t, "orders", "acme")
	_, keyPEM := publicKey(t)
	f.mustWorkload(t, "bot", "orders", keyPEM)

	created, err := f.client.CreateClientSecret(ctx, &treatyv1.CreateClientSecretRequest{WorkloadId: "bot", Ttl: durationpb.New(48 * time.Hour), Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	cs := created.GetClientSecret()
	if !strings.HasPrefix(created.GetSecret(), "treaty_cs_") || cs.GetCreator() != "alice" ||
		cs.GetExpireTime().AsTime().Sub(cs.GetCreateTime().AsTime()) != 48*time.Hour || cs.GetRevokeTime() != nil {
		t.Fatalf("created %v", cs)
	}

	// The issuer's directory gets the hash, which matches the secret shown once.
	dir := registrysvc.NewDirectory(f.conn)
	vs, err := dir.ClientSecrets(ctx, "bot")
	if err != nil || len(vs) != 1 || vs[0].ID != cs.GetId() || vs[0].SHA256 != sha256.Sum256([]byte(created.GetSecret())) ||
		!vs[0].Expires.Equal(cs.GetExpireTime().AsTime()) {
		t.Fatalf("ClientSecrets = %+v, %v", vs, err)
	}
	list, err := f.client.ListClientSecrets(ctx, &treatyv1.ListClientSecretsRequest{WorkloadId: "bot"})
	if err != nil || len(list.GetClientSecrets()) != 1 || strings.Contains(list.String(), created.GetSecret()) {
		t.Fatalf("List = %v, %v", list, err)
	}
	rev, err := f.client.RevokeClientSecret(ctx, &treatyv1.RevokeClientSecretRequest{WorkloadId: "bot", SecretId: cs.GetId(), Reason: "rotated", Actor: "bob"})
	if err != nil || rev.GetClientSecret().GetRevokeTime() == nil {
		t.Fatalf("Revoke = %v, %v", rev, err)
	}
	if vs, err := dir.ClientSecrets(ctx, "bot"); err != nil || len(vs) != 0 {
		t.Fatalf("ClientSecrets after revocation = %+v, %v; want none", vs, err)
	}

	for _, tc := range []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"create: bad workload id", func() error {
			_, err := f.client.CreateClientSecret(ctx, &treatyv1.CreateClientSecretRequest{WorkloadId: "Bot"})
			return err
		}, codes.InvalidArgument, "workload_id"},
		{"create: negative ttl", func() error {
			_, err := f.client.CreateClientSecret(ctx, &treatyv1.CreateClientSecretRequest{WorkloadId: "bot", Ttl: durationpb.New(-time.Hour)})
			return err
		}, codes.InvalidArgument, "ttl"},
		{"create: ttl over 90 days", func() error {
			_, err := f.client.CreateClientSecret(ctx, &treatyv1.CreateClientSecretRequest{WorkloadId: "bot", Ttl: durationpb.New(91 * 24 * time.Hour)})
			return err
		}, codes.InvalidArgument, "ttl"},
		{"create: unknown workload", func() error {
			_, err := f.client.CreateClientSecret(ctx, &treatyv1.CreateClientSecretRequest{WorkloadId: "nobody"})
			return err
		}, codes.NotFound, ""},
		{"revoke: bad secret id", func() error {
			_, err := f.client.RevokeClientSecret(ctx, &treatyv1.RevokeClientSecretRequest{WorkloadId: "bot", SecretId: "CS 1"})
			return err
		}, codes.InvalidArgument, "secret_id"},
		{"revoke: unknown secret", func() error {
			_, err := f.client.RevokeClientSecret(ctx, &treatyv1.RevokeClientSecretRequest{WorkloadId: "bot", SecretId: "cs-0", Reason: "rotated", Actor: "bob"})
			return err
		}, codes.NotFound, ""},
		{"list: bad workload id", func() error {
			_, err := f.client.ListClientSecrets(ctx, &treatyv1.ListClientSecretsRequest{WorkloadId: ""})
			return err
		}, codes.InvalidArgument, "workload_id"},
		{"verifiers: unknown workload", func() error {
			_, err := f.client.ListClientSecretVerifiers(ctx, &treatyv1.ListClientSecretVerifiersRequest{WorkloadId: "nobody"})
			return err
		}, codes.NotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) { checkStatus(t, tc.call(), tc.code, tc.field) })
	}
}
