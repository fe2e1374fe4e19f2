package authn

import (
	"context"

	"google.golang.org/grpc/credentials"

	"github.com/treaty-dev/treaty/access"
)

// tokenCredentials sends a Treaty token with every call.
type tokenCredentials struct{ header string }

// Token returns per-RPC credentials sending token as "authorization: Bearer <token>". They do
// not require transport security: Treaty's peers on loopback talk plaintext, which the server
// allows only there (or with --insecure).
func Token(token string) credentials.PerRPCCredentials {
	return tokenCredentials{header: "Bearer " + token}
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (t tokenCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": t.header}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (tokenCredentials) RequireTransportSecurity() bool { return false }

// TokenFile returns per-RPC credentials sending the token in path (see access.ReadTokenFile).
func TokenFile(path string) (credentials.PerRPCCredentials, error) {
	tok, err := access.ReadTokenFile(path)
	if err != nil {
		return nil, err
	}
	return Token(tok), nil
}
