package feed_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// An integration's environment and source ranges travel through the feed, the PDP's cache and
// snapshots unchanged, and its source ranges decide which addresses may use its credentials.
func TestIntegrationEnvironmentAndSourceRanges(t *testing.T) {
	ev := integration("acme-api", "acme")
	ev.GetIntegrationChanged().Environment = "production"
	ev.GetIntegrationChanged().SourceRanges = []string{"203.0.113.7/24", "2001:db8::/32"}
	open := integration("acme-open", "acme")
	broken := integration("acme-broken", "acme")
	broken.GetIntegrationChanged().SourceRanges = []string{"not-a-cidr"}
	s := apply(t, onboarded(t), ev, open, broken)

	i, _ := s.Integration("acme-api")
	if i.Environment != "production" {
		t.Errorf("environment %q, want production", i.Environment)
	}
	want := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	if !slices.Equal(i.SourceRanges, want) {
		t.Errorf("source ranges %v, want %v (masked)", i.SourceRanges, want)
	}
	for _, tc := range []struct {
		integration, addr string
		want              bool
	}{
		{"acme-api", "203.0.113.200", true},
		{"acme-api", "::ffff:203.0.113.9", true}, // IPv4-mapped, as dual-stack listeners report it
		{"acme-api", "2001:db8::1", true},
		{"acme-api", "198.51.100.1", false},
		{"acme-api", "", false}, // unknown source: outside every range
		{"acme-open", "198.51.100.1", true},
		{"acme-open", "", true},
		{"acme-broken", "198.51.100.1", false}, // fails closed
	} {
		i, _ := s.Integration(tc.integration)
		var addr netip.Addr
		if tc.addr != "" {
			addr = netip.MustParseAddr(tc.addr)
		}
		if got := i.AllowsSource(addr); got != tc.want {
			t.Errorf("%s.AllowsSource(%q) = %v, want %v", tc.integration, tc.addr, got, tc.want)
		}
	}

	st := storetest.OpenBolt(t, store.Schema{Name: "feedtest", Version: 1, Buckets: feed.Buckets})
	if err := st.Update(func(tx store.Tx) error { return feed.SaveAll(tx, s) }); err != nil {
		t.Fatal(err)
	}
	var loaded *feed.State
	if err := st.View(func(tx store.Tx) (err error) { loaded, err = feed.Load(tx); return err }); err != nil {
		t.Fatal(err)
	}
	opts := []cmp.Option{protocmp.Transform(), protocmp.SortRepeated(func(a, b *treatyv1.IntegrationRecord) bool {
		return a.Integration.IntegrationId < b.Integration.IntegrationId
	})}
	if diff := cmp.Diff(s.Proto(), loaded.Proto(), opts...); diff != "" {
		t.Errorf("Load mismatch (-want +got):\n%s", diff)
	}
	if got, _ := loaded.Integration("acme-api"); got.Environment != "production" || len(got.SourceRanges) != 2 {
		t.Errorf("loaded integration %+v", got)
	}
}
