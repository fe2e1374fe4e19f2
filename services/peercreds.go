package services

import (
	"context"
	"crypto/tls"
	"errors"
	"net"

	"google.golang.org/grpc/credentials"

	"github.com/treaty-dev/treaty/certs"
)

// peerTLS secures the calls this process makes to its peers: TLS with the client configuration
// current at each handshake (certs.Files.ClientConfig), so that a CA bundle replaced on disk
// (--ca) is trusted by the next connection to a peer, without a restart. A connection already
// made keeps the bundle it was verified with; a peer whose certificate now comes from the new CA
// is reached once gRPC re-dials it (its old connection failing, or the peer restarting).
//
// Why per handshake and not one tls.Config with a live pool: Go verifies the peer against the
// config's RootCAs during the handshake, and doing it instead in VerifyConnection would lose the
// IP SAN check for peers dialled by address (see certs.Files.ClientConfig).
type peerTLS struct{ files *certs.Files }

var _ credentials.TransportCredentials = peerTLS{}

func (p peerTLS) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(p.files.ClientConfig()).ClientHandshake(ctx, authority, conn)
}

func (p peerTLS) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("peer credentials are for dialling peers, not for serving")
}

// Info is TLS's, which does not depend on the files (grpc asks at every dial and handshake).
func (p peerTLS) Info() credentials.ProtocolInfo { return tlsInfo }

var tlsInfo = credentials.NewTLS(&tls.Config{}).Info()

func (p peerTLS) Clone() credentials.TransportCredentials { return p }

// OverrideServerName is deprecated in grpc-go and never called by it; the name to verify is the
// dialled authority's.
func (p peerTLS) OverrideServerName(string) error {
	return errors.New("peer credentials verify the dialled host name")
}
