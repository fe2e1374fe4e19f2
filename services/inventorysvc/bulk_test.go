package inventorysvc_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/inventorysvc"
	"github.com/treaty-dev/treaty/store/storetest"
)

// bulkClient serves the InventoryService of a real registry publishing into a real revoker.
func bulkClient(t *testing.T) treatyv1.InventoryServiceClient {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	rev, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenBolt(t, registry.Schema)
	relay := outbox.NewRelay(st, rev, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { relay.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	reg, err := registry.New(registry.Config{Store: st, Relay: relay, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return treatyv1.NewInventoryServiceClient(grpctest.Serve(t, inventorysvc.New(inventorysvc.Config{Registry: reg, Logger: quiet}).Register))
}

func importChunks(t *testing.T, c treatyv1.InventoryServiceClient, chunks ...*treatyv1.ImportInventoryRequest) (*treatyv1.ImportInventoryResponse, error) {
	t.Helper()
	stream, err := c.ImportInventory(context.Background())
	if err != nil {
		return nil, err
	}
	for _, ch := range chunks {
		if err := stream.Send(ch); err != nil {
			if err == io.EOF {
				break
			}
			return nil, err
		}
	}
	return stream.CloseAndRecv()
}

func pemKey(t *testing.T) string {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// TestImportInventory: items arrive over several chunks and are numbered across them; what the
// proto can say but the registry cannot take is an item error like the registry's own; a bad
// actor is INVALID_ARGUMENT; a valid import commits and exports back.
func TestImportInventory(t *testing.T) {
	c := bulkClient(t)
	end := timestamppb.New(time.Now().Add(48 * time.Hour))
	p := func(id string) *treatyv1.Partner {
		return &treatyv1.Partner{Id: id, DisplayName: id, OwnerTeam: "ops", ContractEndTime: end,
			State: treatyv1.PartnerState_PARTNER_STATE_ACTIVE, ApprovedBy: "carol"}
	}
	integ := &treatyv1.Integration{Id: "a-api", PartnerId: "a", AllowedScopes: []string{"x:read"}, Audiences: []string{"api"},
		MaxCredentialTtl: durationpb.New(time.Minute), State: treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE, ApprovedBy: "carol",
		Environment: "production"}

	// Bad items, over two chunks.
	noEnd := p("c")
	noEnd.ContractEndTime = nil
	badRanges := &treatyv1.Integration{Id: "b-api", PartnerId: "a", AllowedScopes: []string{"x:read"}, Audiences: []string{"api"},
		MaxCredentialTtl: durationpb.New(time.Minute), SourceRanges: []string{"not a cidr"}, Environment: "production"}
	twoKeys := &treatyv1.Workload{Id: "w2", IntegrationId: "a-api", PublicKeys: []*treatyv1.WorkloadKey{{PublicKeyPem: pemKey(t)}, {PublicKeyPem: pemKey(t)}}}
	resp, err := importChunks(t, c,
		&treatyv1.ImportInventoryRequest{Actor: "importer", Partners: []*treatyv1.Partner{p("a")}, Integrations: []*treatyv1.Integration{integ}},
		&treatyv1.ImportInventoryRequest{Partners: []*treatyv1.Partner{p("b"), noEnd}, Integrations: []*treatyv1.Integration{badRanges},
			Workloads: []*treatyv1.Workload{{Id: "w1", IntegrationId: "a-api", PublicKeys: []*treatyv1.WorkloadKey{{PublicKeyPem: pemKey(t)}}}, twoKeys}},
	)
	if err != nil {
		t.Fatal(err)
	}
	type at struct {
		Kind  string
		Index int32
		Field string
	}
	var got []at
	for _, e := range resp.GetErrors() {
		got = append(got, at{e.GetKind(), e.GetIndex(), e.GetField()})
	}
	want := []at{
		{"partners", 2, "partner.contract_end_time"},
		{"integrations", 1, "integration.source_ranges"},
		{"workloads", 1, "workload.public_keys"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if resp.GetCommitted() || resp.GetPartners() != 3 || resp.GetIntegrations() != 2 || resp.GetWorkloads() != 2 {
		t.Errorf("response = %v", resp)
	}

	if _, err := importChunks(t, c, &treatyv1.ImportInventoryRequest{Actor: string(make([]byte, 300)), Partners: []*treatyv1.Partner{p("a")}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad actor: %v, want INVALID_ARGUMENT", err)
	}

	resp, err = importChunks(t, c,
		&treatyv1.ImportInventoryRequest{Actor: "importer", Partners: []*treatyv1.Partner{p("a")}},
		&treatyv1.ImportInventoryRequest{Integrations: []*treatyv1.Integration{integ},
			Workloads: []*treatyv1.Workload{{Id: "w1", IntegrationId: "a-api", PublicKeys: []*treatyv1.WorkloadKey{{PublicKeyPem: pemKey(t)}}}}},
	)
	if err != nil || !resp.GetCommitted() || len(resp.GetErrors()) != 0 {
		t.Fatalf("valid import = %v, %v", resp, err)
	}
	stream, err := c.ExportInventory(context.Background(), &treatyv1.ExportInventoryRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for {
		chunk, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range chunk.GetPartners() {
			ids = append(ids, p.GetId()+"/"+p.GetState().String())
		}
		for _, i := range chunk.GetIntegrations() {
			ids = append(ids, i.GetId())
		}
		for _, w := range chunk.GetWorkloads() {
			ids = append(ids, w.GetId())
		}
	}
	if diff := cmp.Diff([]string{"a/PARTNER_STATE_ACTIVE", "a-api", "w1"}, ids); diff != "" {
		t.Errorf("export (-want +got):\n%s", diff)
	}
}
