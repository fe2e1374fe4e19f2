package issuersvc_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer/issuertest"
	"github.com/treaty-dev/treaty/services/issuersvc"
)

func TestCredentialLookup(t *testing.T) {
	e := newEnv(t)
	c := e.issue(e.request()).GetCredential()
	lookup := issuersvc.NewCredentialLookup(e.conn)

	exp, partnerID, found, err := lookup.Credential(context.Background(), c.GetId())
	if err != nil || !found || !exp.Equal(c.GetExpireTime().AsTime()) || partnerID != partner {
		t.Fatalf("Credential = %v, %q, %v, %v; want %v, %q, true, nil", exp, partnerID, found, err, c.GetExpireTime().AsTime(), partner)
	}
	if _, _, found, err := lookup.Credential(context.Background(), "never-issued"); found || err != nil {
		t.Fatalf("unknown jti: found %v, err %v; want false, nil", found, err)
	}

	// The revoker keeps a revocation exactly as long as the inventory says the credential lives:
	// a revoker configured with this issuer as its peer, as services.Start wires one, asks it
	// through the lookup.
	revoker := issuertest.Start(t, issuertest.Config{IssuerPeer: e.conn.Target()})
	seq := revoker.Revoke(treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, c.GetId())
	r, ok := revoker.State().RevokedCredential(c.GetId())
	if !ok || r.Sequence != seq || !r.Expires.Equal(c.GetExpireTime().AsTime()) || r.PartnerID != partner {
		t.Fatalf("revocation = %+v, want at %d with expiry %v and partner %q", r, seq, c.GetExpireTime().AsTime(), partner)
	}
}

func TestCredentialLookupUnreachable(t *testing.T) {
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, _, found, err := issuersvc.NewCredentialLookup(conn).Credential(ctx, "some-jti"); err == nil || found {
		t.Fatalf("unreachable issuer: found %v, err %v; want an error", found, err)
	}
}
