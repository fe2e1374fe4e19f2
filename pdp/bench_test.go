package pdp_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/treaty-dev/treaty/pdp"
)

// The decision path on a warm state: a ready PDP, a valid token, an allow. Token verification
// (parse and Ed25519) dominates until the verified-token cache lands.

func BenchmarkCheck(b *testing.B) {
	e := newEnv(b, pdp.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	req := pdp.CheckRequest{Token: e.token(b, nil), Action: "read", Resource: "api"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d, err := e.pdp.Check(ctx, req); err != nil || !d.Allow {
			b.Fatalf("Check = %+v, %v", d, err)
		}
	}
}

func BenchmarkCheckParallel(b *testing.B) {
	e := newEnv(b, pdp.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	req := pdp.CheckRequest{Token: e.token(b, nil), Action: "read", Resource: "api"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if d, err := e.pdp.Check(ctx, req); err != nil || !d.Allow {
				b.Errorf("Check = %+v, %v", d, err)
				return
			}
		}
	})
}

func BenchmarkCheckIssuance(b *testing.B) {
	e := newEnv(b, pdp.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	req := pdp.IssuanceRequest{WorkloadID: "acme-bot", Scopes: []string{"read", "write"}, Audience: "api", Kid: "k1"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d, err := e.pdp.CheckIssuance(ctx, req); err != nil || !d.Allow {
			b.Fatalf("CheckIssuance = %+v, %v", d, err)
		}
	}
}
