package authn

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/treaty-dev/treaty/access"
	"github.com/treaty-dev/treaty/store/storetest"
)

// FuzzAuthorization feeds authenticate any authorization metadata: it authenticates only the
// known token after a case-insensitive "Bearer " scheme, and its refusals never quote what the
// caller sent.
func FuzzAuthorization(f *testing.F) {
	acc, err := access.Open(access.Config{Store: storetest.OpenBolt(f, access.Schema), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { acc.Close() })
	_, known, err := acc.CreateIdentity(context.Background(), "pdp", []access.Role{access.RolePDPClient}, true, "", "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	a := New(Config{Access: acc, Logger: slog.New(slog.DiscardHandler)})
	for _, s := range []string{"", "Bearer ", "Bearer " + known, "bearer  " + known, "BEARER " + known, "Bearer " + known + " ",
		"Basic " + known, "Bearer trt_" + strings.Repeat("A", 43), "Bearer " + known[:46], "Bearer\t" + known, "Bearer \x00" + known} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.MD{"authorization": []string{v}})
		c, via, err := a.authenticate(ctx)
		want := len(v) >= 7 && strings.EqualFold(v[:7], "bearer ") && strings.TrimLeft(v[7:], " ") == known
		if (err == nil) != want {
			t.Fatalf("authenticate(%q) = %+v, %v; want ok=%v", v, c, err, want)
		}
		if via != access.ViaToken {
			t.Fatalf("via = %q, want token", via)
		}
		if err == nil {
			if c.Name != "pdp" {
				t.Fatalf("caller = %+v", c)
			}
			return
		}
		if len(v) >= 8 && strings.Contains(err.Error(), v) || strings.Contains(err.Error(), known) {
			t.Fatalf("the refusal %q quotes the credential", err)
		}
	})
}
