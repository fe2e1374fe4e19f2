package authn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

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

// maxCredentialFile bounds what ReadCredentialFile reads: a token is 47 bytes.
const maxCredentialFile = 4 << 10

// ReadCredentialFile reads a Treaty token from path (one line, as Bootstrap writes it; spaces and
// newlines around it are ignored). Its errors never quote the file's content.
func ReadCredentialFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read credential file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCredentialFile+1))
	if err != nil {
		return "", fmt.Errorf("read credential file %s: %w", path, err)
	}
	if len(b) > maxCredentialFile {
		return "", fmt.Errorf("credential file %s is larger than a token", path)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("credential file %s is empty", path)
	}
	if !access.ValidTokenShape(tok) {
		return "", errors.New("credential file " + path + " does not hold a Treaty token (trt_ and 43 characters)")
	}
	return tok, nil
}
