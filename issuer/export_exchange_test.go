package issuer

import (
	"context"

	"github.com/treaty-dev/treaty/token"
)

// SignClaims signs arbitrary claims with the issuer's active key, for tests of what the issuer
// refuses to exchange even when it signed it: tokens it would never mint.
func SignClaims(i *Issuer, c token.Claims) (string, error) {
	return i.active.Load().sign(context.Background(), c)
}
