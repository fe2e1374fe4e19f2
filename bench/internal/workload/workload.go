// Package workload onboards load-test workloads through a server's RegistryService and signs
// their client assertions, for the measuring tools under bench/ (load issue, soak).
package workload

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
)

// Key is an onboarded workload and its private key.
type Key struct {
	ID  string
	Key ed25519.PrivateKey
}

// Onboard creates, under prefix, a partner and an integration allowing scopes read and write for
// audience, each approved and active in one step (the registry's shortcut), and n workloads with
// fresh Ed25519 keys.
func Onboard(ctx context.Context, reg treatyv1.RegistryServiceClient, prefix string, n int, audience string) ([]Key, error) {
	const actor = "bench"
	partner, integ := prefix, prefix+"-integ"
	if _, err := reg.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Actor: actor, Partner: &treatyv1.Partner{
		Id: partner, DisplayName: "Load " + partner, OwnerTeam: "bench", ContractEndTime: timestamppb.New(time.Now().Add(30 * 24 * time.Hour)),
	}, Activate: true, ApprovedBy: actor}); err != nil {
		return nil, fmt.Errorf("create partner: %w", err)
	}
	if _, err := reg.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Actor: actor, Integration: &treatyv1.Integration{
		Id: integ, PartnerId: partner, AllowedScopes: []string{"read", "write"}, Audiences: []string{audience},
		MaxCredentialTtl: durationpb.New(5 * time.Minute), Environment: "production",
	}, Activate: true, ApprovedBy: actor}); err != nil {
		return nil, fmt.Errorf("create integration: %w", err)
	}
	out := make([]Key, n)
	for i := range out {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, err
		}
		id := fmt.Sprintf("%s-w%03d", prefix, i)
		if _, err := reg.CreateWorkload(ctx, &treatyv1.CreateWorkloadRequest{
			Id: id, IntegrationId: integ, Actor: actor,
			PublicKeyPem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		}); err != nil {
			return nil, fmt.Errorf("create workload: %w", err)
		}
		out[i] = Key{ID: id, Key: priv}
	}
	return out, nil
}

// Presign signs n client assertions for the issuer aud, round-robin over the workloads, each with
// a unique jti and exp five minutes ahead.
func Presign(keys []Key, aud string, n int) ([]string, error) {
	out := make([]string, n)
	now := time.Now()
	for i := range out {
		k := keys[i%len(keys)]
		a, err := issuer.SignAssertion(k.ID, aud, k.Key, now, issuer.MaxAssertionLifetime)
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

// RandomHex returns n random bytes in hex, for names that must not collide between runs.
func RandomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
