package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
)

// TestDiskFull runs the real server with its data folder on a small tmpfs (mounted for the test,
// so it needs root; skipped otherwise) and fills the filesystem. Writes (a partner, a revocation,
// an issuance) fail with UNAVAILABLE saying the disk is full, the server stays up, reads and
// decisions go on; once space is freed writes succeed again without a restart. After a clean
// stop every file passes bbolt's consistency check and the audit chain verifies.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	if err := syscall.Mount("tmpfs", data, "tmpfs", 0, "size=16m"); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(data, syscall.MNT_DETACH) }) // after the server stops
	addr := freeAddr(t)
	srv := startServer(t, addr, "--data", data)
	conn := dial(t, addr)
	reg := treatyv1.NewRegistryServiceClient(conn)
	iss := treatyv1.NewIssuerServiceClient(conn)
	rev := treatyv1.NewRevocationServiceClient(conn)
	pdp := treatyv1.NewDecisionServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const aud = "https://orders.diskfull.test"
	workload, key := crashOnboard(t, reg, aud)
	desc, err := iss.GetIssuer(ctx, &treatyv1.GetIssuerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	issue := func() (*treatyv1.IssueTokenResponse, error) {
		a, err := issuer.SignAssertion(workload, desc.GetIssuer(), key, time.Now(), issuer.MaxAssertionLifetime)
		if err != nil {
			t.Fatal(err)
		}
		return iss.IssueToken(ctx, &treatyv1.IssueTokenRequest{ClientAssertion: a, Scopes: []string{"orders.read"}, Audience: aud})
	}
	tok, err := issue()
	if err != nil {
		t.Fatal(err)
	}
	createPartner := func(id string) error {
		_, err := reg.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Actor: "e2e", Activate: true, ApprovedBy: "e2e",
			Partner: &treatyv1.Partner{Id: id, DisplayName: id, OwnerTeam: "e2e", ContractEndTime: timestamppb.New(time.Now().AddDate(1, 0, 0))}})
		return err
	}
	revoke := func(jti string) error {
		_, err := rev.Revoke(ctx, &treatyv1.RevokeRequest{TargetKind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, TargetId: jti, Reason: "e2e", Actor: "e2e"})
		return err
	}
	decide := func() {
		t.Helper()
		resp, err := pdp.Check(ctx, &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: tok.GetAccessToken()}, Action: "orders.read", Resource: aud})
		if err != nil || resp.GetDecision() != treatyv1.Decision_DECISION_ALLOW {
			t.Fatalf("check on a full disk: %v, %v; want allow", resp, err)
		}
	}

	// Fill the filesystem to the last byte.
	filler := filepath.Join(data, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			if len(chunk) == 1 {
				break
			}
			chunk = chunk[:len(chunk)/2]
		}
	}
	f.Close()

	full := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "no space left on device") {
			t.Fatalf("%s on a full disk: %v, want UNAVAILABLE saying the disk is full", what, err)
		}
	}
	// bbolt may still fit a small write into pages it has free: write until each store refuses.
	var err1, err2, err3 error
	var lastPartner string
	for i := 0; i < 200 && (err1 == nil || err2 == nil || err3 == nil); i++ {
		if err1 == nil {
			lastPartner = fmt.Sprintf("full-%03d", i)
			err1 = createPartner(lastPartner)
		}
		if err2 == nil {
			err2 = revoke(fmt.Sprintf("full-%03d-%s", i, strings.Repeat("y", 100)))
		}
		if err3 == nil {
			_, err3 = issue()
		}
	}
	// The registry's own write may still fit while the revoker's publication of it does not: then
	// the partner is kept and its change stays queued (UNAVAILABLE, not confirmed) until space is
	// freed.
	if !strings.Contains(status.Convert(err1).Message(), "recorded durably") {
		full("CreatePartner", err1)
	}
	full("Revoke", err2)
	full("IssueToken", err3)
	if _, err := reg.GetPartner(ctx, &treatyv1.GetPartnerRequest{Id: "acme"}); err != nil {
		t.Fatalf("GetPartner on a full disk: %v", err)
	}
	for range 20 {
		decide()
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(status.Convert(err1).Message(), "recorded durably") {
		if _, err := reg.GetPartner(ctx, &treatyv1.GetPartnerRequest{Id: lastPartner}); err != nil {
			t.Fatalf("the partner recorded but not confirmed on a full disk: %v", err)
		}
	}
	if err := createPartner("after-full"); err != nil {
		t.Fatalf("CreatePartner once space is freed: %v", err)
	}
	if err := revoke("after-full"); err != nil {
		t.Fatalf("Revoke once space is freed: %v", err)
	}
	if _, err := issue(); err != nil {
		t.Fatalf("IssueToken once space is freed: %v", err)
	}
	decide()

	srv.stop()
	checkFiles(t, data)
	if r := treaty(t, nil, "", "audit", "verify", "--db", filepath.Join(data, "registry.db")); r.code != 0 {
		t.Fatalf("audit chain after the disk was full: %s", r)
	}
}
