// Package dial is how the benchmark tools connect to a Treaty server: plaintext on loopback,
// authenticated with a Treaty token.
package dial

import (
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/treaty-dev/treaty/services/authn"
)

// CredentialEnv names the variable holding the token file when a tool is given none.
const CredentialEnv = "TREATY_CREDENTIAL_FILE"

// Server connects to addr with the token in credentialFile (default $TREATY_CREDENTIAL_FILE,
// for example DATA/admin.credential of the server under test). Without either, calls go
// unauthenticated: only public ones (health, token requests) are then served.
func Server(addr, credentialFile string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	if credentialFile == "" {
		credentialFile = os.Getenv(CredentialEnv)
	}
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if credentialFile != "" {
		creds, err := authn.TokenFile(credentialFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", CredentialEnv, err)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(creds))
	}
	return grpc.NewClient(addr, opts...)
}
