package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/services"
)

// TestPartnerOffboard runs `treaty partner offboard` against every service in one process, as
// `treaty serve` runs them: the partner's live credentials are revoked one by one, the command
// shows its progress and ends with the confirmed record, which `partner offboarding` shows again.
func TestPartnerOffboard(t *testing.T) {
	_, conn, flags := startServer(t, services.Config{IssuerURL: "https://treaty.test"})
	ctx := context.Background()
	reg, iss := treatyv1.NewRegistryServiceClient(conn), treatyv1.NewIssuerServiceClient(conn)
	if _, err := reg.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Actor: "alice", Activate: true, ApprovedBy: "carol", Partner: &treatyv1.Partner{
		Id: "acme", DisplayName: "Acme", OwnerTeam: "payments", ContractEndTime: timestamppb.New(time.Now().Add(24 * time.Hour)),
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Actor: "alice", Activate: true, ApprovedBy: "carol", Integration: &treatyv1.Integration{
		Id: "acme-api", PartnerId: "acme", AllowedScopes: []string{"orders:read"}, Audiences: []string{"api"}, Environment: "production",
		MaxCredentialTtl: durationpb.New(time.Hour),
	}}); err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	wl, err := reg.CreateWorkload(ctx, &treatyv1.CreateWorkloadRequest{Id: "acme-bot", IntegrationId: "acme-api", Actor: "alice",
		PublicKeyPem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))})
	if err != nil {
		t.Fatal(err)
	}
	const n = 150
	for range n {
		a, err := issuer.SignAssertion("acme-bot", "https://treaty.test", priv, time.Now(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := iss.IssueToken(ctx, &treatyv1.IssueTokenRequest{ClientAssertion: a, Scopes: []string{"orders:read"}, Audience: "api",
			MinSequence: wl.GetSequence()}); err != nil {
			t.Fatal(err)
		}
	}

	cli := func(args ...string) (int, string, string) {
		return treaty(t, append(append(args, flags...), "--actor", "alice")...)
	}
	if code, _, errOut := cli("partner", "offboard", "acme"); code != exitUsage || !strings.Contains(errOut, "--reason") {
		t.Fatalf("offboard without a reason: exit %d, %q", code, errOut)
	}
	code, out, errOut := cli("partner", "offboard", "acme", "--reason", "contract terminated")
	if code != exitOK {
		t.Fatalf("partner offboard: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"step:", "terminated", "revoked credentials:  150", "confirmed:", "0 live credentials"} {
		if !strings.Contains(out, want) {
			t.Errorf("partner offboard output lacks %q:\n%s", want, out)
		}
	}
	// stderr is not a terminal: plain lines, a few per step at most, never a redrawn bar.
	if !strings.Contains(errOut, "treaty: revoking credentials: 150/150 done\n") || strings.ContainsRune(errOut, '\r') ||
		strings.Count(errOut, "\n") > 8 {
		t.Errorf("progress on a non-terminal stderr:\n%q", errOut)
	}
	code, out, _ = cli("partner", "offboarding", "acme", "-o", "json")
	out = strings.Join(strings.Fields(out), " ") // protojson varies its spacing
	if code != exitOK || !strings.Contains(out, `"revoked_credentials": "150"`) || !strings.Contains(out, `"OFFBOARDING_STEP_TERMINATED"`) {
		t.Errorf("partner offboarding -o json: exit %d\n%s", code, out)
	}
	resp, err := iss.CountLiveCredentials(ctx, &treatyv1.CountLiveCredentialsRequest{PartnerId: "acme"})
	if err != nil || resp.GetCount() != 0 {
		t.Errorf("live after offboarding: %v, %v", resp.GetCount(), err)
	}
}
