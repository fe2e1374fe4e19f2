package services

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/peer"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
)

func TestTrust(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name     string
		prefixes []netip.Prefix
		addr     string
		want     bool
	}{
		{"nobody by default", nil, "127.0.0.1:5000", false},
		{"loopback v4", loopback, "127.0.0.1:5000", true},
		{"loopback v6", loopback, "[::1]:5000", true},
		{"v4-mapped v6", loopback, "[::ffff:127.0.0.1]:5000", true},
		{"outside", loopback, "10.0.0.1:5000", false},
		{"garbage", loopback, "not-an-address", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trust := NewTrust(tt.prefixes, nil)
			if got := trust.HTTP(&http.Request{RemoteAddr: tt.addr}); got != tt.want {
				t.Errorf("HTTP(%s) = %v, want %v", tt.addr, got, tt.want)
			}
			addr, err := net.ResolveTCPAddr("tcp", tt.addr)
			if err != nil {
				return // not an address a gRPC peer can have
			}
			ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: addr})
			if got := trust.GRPC(ctx); got != tt.want {
				t.Errorf("GRPC(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
	if NewTrust(loopback, nil).GRPC(context.Background()) {
		t.Error("a context without a peer is trusted")
	}
}

// A trusted identity may ask about a bare workload; another pdp-client on the same address may
// not (subject_not_trusted): trust follows who calls, not where from.
func TestTrustByIdentity(t *testing.T) {
	srv, admin := serve(t, Config{TrustSubjectsIdentities: []string{"gateway"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitServing(ctx, t, srv)
	tokens := map[string]string{}
	for _, name := range []string{"gateway", "other"} {
		resp, err := treatyv1.NewAccessServiceClient(admin).CreateIdentity(ctx, &treatyv1.CreateIdentityRequest{
			Name: name, Roles: []string{"pdp-client"}, IssueToken: true, Reason: "test",
		})
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = resp.GetToken()
	}
	for name, wantTrusted := range map[string]bool{"gateway": true, "other": false} {
		resp, err := treatyv1.NewDecisionServiceClient(dialToken(t, srv, tokens[name])).Check(ctx, &treatyv1.CheckRequest{
			Subject: &treatyv1.CheckRequest_WorkloadId{WorkloadId: "nobody"}, Action: "read", Resource: "api",
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		refused := slices.Contains(resp.GetReasons(), pdp.ReasonSubjectNotTrusted)
		if refused == wantTrusted || resp.GetDecision() == treatyv1.Decision_DECISION_ALLOW {
			t.Errorf("%s: %v %v, want trusted=%v (and a deny: the workload does not exist)", name, resp.GetDecision(), resp.GetReasons(), wantTrusted)
		}
	}
}
