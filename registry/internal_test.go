package registry

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// Paths no public operation can reach yet (there is no page big enough to fill cheaply, and no way
// to suspend an integration until the lifecycle issue) are checked here, from inside.

func TestQueryPageSizes(t *testing.T) {
	for _, tc := range []struct{ in, want int }{{0, 100}, {1, 1}, {100, 100}, {1000, 1000}, {1001, 1000}, {1 << 30, 1000}} {
		q, err := newQuery("partners", "", tc.in, "")
		if err != nil || q.size != tc.want {
			t.Errorf("page size %d: got %v, %v; want %d", tc.in, q, err, tc.want)
		}
	}
	if _, err := newQuery("partners", "", -1, ""); fail.KindOf(err) != fail.Invalid {
		t.Errorf("negative page size: %v", err)
	}
}

func TestCreateWorkloadNeedsActiveIntegration(t *testing.T) {
	rev, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenBolt(t, Schema)
	relay := outbox.NewRelay(st, rev, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { relay.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	reg, err := New(Config{Store: st, Relay: relay})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.CreatePartner(ctx, Partner{ID: "acme", DisplayName: "Acme", OwnerTeam: "sec", ContractEnd: time.Now().Add(time.Hour)}, "", CreateOptions{Activate: true, ApprovedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	// Until integrations can be suspended through the API, store a suspended one directly.
	rec := integrationRecord{ID: "orders", PartnerID: "acme", AllowedScopes: []string{"a"}, Audiences: []string{"b"},
		MaxTTL: time.Minute, State: treatyv1.IntegrationState_INTEGRATION_STATE_SUSPENDED, Revision: 1}
	if err := st.Update(func(tx store.Tx) error { return integrations.put(tx, rec.ID, rec.PartnerID, &rec) }); err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	_, _, err = reg.CreateWorkload(ctx, "bot", "orders", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "", "")
	if fail.KindOf(err) != fail.Precondition || !strings.Contains(err.Error(), "suspended") {
		t.Errorf("CreateWorkload under a suspended integration: %v, want a precondition error naming the state", err)
	}
}
