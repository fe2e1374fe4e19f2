package services

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"testing"

	"google.golang.org/grpc/peer"
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
			trust := NewTrust(tt.prefixes)
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
	if NewTrust(loopback).GRPC(context.Background()) {
		t.Error("a context without a peer is trusted")
	}
}
