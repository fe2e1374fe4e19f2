package issuersvc

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/edge"
)

// NewCredentialLookup returns a revoker.CredentialLookup that asks the issuer's inventory over
// conn, so that a revoked credential is denylisted exactly as long as it could be valid.
func NewCredentialLookup(conn grpc.ClientConnInterface) revoker.CredentialLookup {
	return credentialLookup{client: treatyv1.NewIssuerServiceClient(conn)}
}

type credentialLookup struct {
	client treatyv1.IssuerServiceClient
}

// Credential implements revoker.CredentialLookup. A jti the inventory does not know is not an
// error: found is false.
func (l credentialLookup) Credential(ctx context.Context, jti string) (time.Time, string, bool, error) {
	resp, err := l.client.GetCredential(ctx, &treatyv1.GetCredentialRequest{Id: jti})
	if status.Code(err) == codes.NotFound {
		return time.Time{}, "", false, nil
	}
	if err != nil {
		return time.Time{}, "", false, edge.FromStatus(err)
	}
	c := resp.GetCredential()
	if c.GetExpireTime() == nil {
		return time.Time{}, "", false, errors.New("issuer answered a credential without an expire time")
	}
	return c.GetExpireTime().AsTime(), c.GetPartnerId(), true, nil
}
