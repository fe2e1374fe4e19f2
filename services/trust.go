package services

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"slices"

	"google.golang.org/grpc/peer"

	"github.com/treaty-dev/treaty/services/authn"
)

// Trust decides which callers may send the PDP already-verified claims or a bare workload id
// instead of a credential: such a caller vouches for the subject itself, so only enforcement
// points the operator names may do it, by identity (an authenticated caller's name, for example
// a gateway's certificate identity) or by network address. Every caller also needs a role that
// may call the decision point at all (pdp-client). The default trusts nobody.
type Trust struct {
	prefixes []netip.Prefix
	names    []string
}

// NewTrust trusts callers whose address lies in one of prefixes or whose authenticated identity
// is one of names.
func NewTrust(prefixes []netip.Prefix, names []string) *Trust {
	return &Trust{prefixes: prefixes, names: names}
}

// GRPC reports whether the gRPC caller of ctx is trusted.
func (t *Trust) GRPC(ctx context.Context) bool {
	if t.named(ctx) {
		return true
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return false
	}
	return t.addr(p.Addr.String())
}

// HTTP reports whether the HTTP caller of r is trusted. Only the connection's own address
// counts: a forwarded-for header is the caller's word, and the caller is what is in question.
func (t *Trust) HTTP(r *http.Request) bool { return t.named(r.Context()) || t.addr(r.RemoteAddr) }

// named reports whether the authenticated caller of ctx is one of the trusted identities.
func (t *Trust) named(ctx context.Context) bool {
	if t == nil || len(t.names) == 0 {
		return false
	}
	c, ok := authn.CallerFrom(ctx)
	return ok && slices.Contains(t.names, c.Name)
}

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
