package services

import (
	"context"
	"net"
	"net/http"
	"net/netip"

	"google.golang.org/grpc/peer"
)

// Trust decides which callers may send the PDP already-verified claims or a bare workload id
// instead of a credential: such a caller vouches for the subject itself, so only enforcement
// points the operator names may do it. Until callers authenticate with mTLS (and roles), a
// caller is named by its network address; the default trusts nobody.
type Trust struct {
	prefixes []netip.Prefix
}

// NewTrust trusts callers whose address lies in one of prefixes.
func NewTrust(prefixes []netip.Prefix) *Trust { return &Trust{prefixes: prefixes} }

// GRPC reports whether the gRPC caller of ctx is trusted.
func (t *Trust) GRPC(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return false
	}
	return t.addr(p.Addr.String())
}

// HTTP reports whether the HTTP caller of r is trusted. Only the connection's own address
// counts: a forwarded-for header is the caller's word, and the caller is what is in question.
func (t *Trust) HTTP(r *http.Request) bool { return t.addr(r.RemoteAddr) }

func (t *Trust) addr(hostport string) bool {
	if t == nil || len(t.prefixes) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range t.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
