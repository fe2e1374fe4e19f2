package issuersvc_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/store/storetest"
)

// An issuer whose disk is full refuses issuance with UNAVAILABLE and a message saying what to do,
// since it must not hand out a credential its inventory does not hold; reads (the issuer's
// metadata, its keys, the inventory) go on. The refused request left nothing behind: the very same
// client assertion, single-use, is accepted once the disk is healed. The file passes bbolt's
// consistency check at cleanup.
func TestIssuerDiskFull(t *testing.T) {
	var st *storetest.FaultyStore
	e := newEnv(t, func(c *issuer.Config) { st = storetest.Faulty(c.Store); c.Store = st })
	ctx := context.Background()
	first := e.issue(e.request())

	st.FailWrites(nil)
	req := e.request()
	_, err := e.client.IssueToken(ctx, req)
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "no space left on device; free space") {
		t.Fatalf("IssueToken on a full disk: %v, want UNAVAILABLE saying the disk is full", err)
	}
	if _, err := e.client.GetIssuer(ctx, &treatyv1.GetIssuerRequest{}); err != nil {
		t.Errorf("GetIssuer on a full disk: %v", err)
	}
	if keys, err := e.client.ListSigningKeys(ctx, &treatyv1.ListSigningKeysRequest{}); err != nil || len(keys.GetKeys()) == 0 {
		t.Errorf("ListSigningKeys on a full disk: %v, %v", keys, err)
	}
	if _, err := e.client.GetCredential(ctx, &treatyv1.GetCredentialRequest{Id: first.GetCredential().GetId()}); err != nil {
		t.Errorf("GetCredential on a full disk: %v", err)
	}

	st.Heal()
	again, err := e.client.IssueToken(ctx, req) // the same assertion: its use was not recorded
	if err != nil {
		t.Fatalf("IssueToken with the refused request's assertion after healing: %v", err)
	}
	if _, err := e.client.IssueToken(ctx, req); status.Code(err) == codes.OK {
		t.Fatal("the assertion was accepted twice after healing")
	}
	list, err := e.client.ListCredentials(ctx, &treatyv1.ListCredentialsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range list.GetCredentials() {
		ids = append(ids, c.GetId())
	}
	if len(ids) != 2 || !strings.Contains(strings.Join(ids, ","), first.GetCredential().GetId()) || !strings.Contains(strings.Join(ids, ","), again.GetCredential().GetId()) {
		t.Fatalf("inventory holds %v, want exactly the two acknowledged credentials", ids)
	}
}
