package registrysvc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/registrysvc"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// switchPublisher is the real revoker behind a switch that can make it unreachable.
type switchPublisher struct {
	next outbox.Publisher
	down atomic.Bool
}

func (p *switchPublisher) Publish(ctx context.Context, entries []*treatyv1.PublishEntry) ([]uint64, error) {
	if p.down.Load() {
		return nil, errors.New("revoker unreachable (injected by the test)")
	}
	return p.next.Publish(ctx, entries)
}

// fixture is a real registry on temp bbolt, publishing into a real revoker, served by the
// Service on a loopback gRPC server.
type fixture struct {
	client treatyv1.RegistryServiceClient
	conn   *grpc.ClientConn
	rev    *revoker.Log
	pub    *switchPublisher
	reg    *registry.Registry // to read what the calls recorded (the audit trail)
}

func start(t *testing.T) *fixture {
	t.Helper()
	rev, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pub := &switchPublisher{next: rev}
	st := storetest.OpenBolt(t, registry.Schema)
	relay := outbox.NewRelay(st, pub, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	relayDone := make(chan struct{})
	go func() { relay.Run(ctx); close(relayDone) }()
	t.Cleanup(func() { cancel(); <-relayDone })
	reg, err := registry.New(registry.Config{Store: st, Relay: relay, Logger: quiet, PublishTimeout: 3 * time.Second}) // generous: a loaded CI machine must not turn a slow confirmation into a failure
	if err != nil {
		t.Fatal(err)
	}

	conn := grpctest.Serve(t, registrysvc.New(registrysvc.Config{Registry: reg, Logger: quiet}).Register)
	return &fixture{client: treatyv1.NewRegistryServiceClient(conn), conn: conn, rev: rev, pub: pub, reg: reg}
}

var contractEnd = time.Now().Add(365 * 24 * time.Hour).UTC().Truncate(time.Second)

func partnerProto(id string) *treatyv1.Partner {
	return &treatyv1.Partner{Id: id, DisplayName: "Partner " + id, OwnerTeam: "platform-security", ContractEndTime: timestamppb.New(contractEnd)}
}

func integrationProto(id, partnerID string) *treatyv1.Integration {
	return &treatyv1.Integration{Id: id, PartnerId: partnerID, AllowedScopes: []string{"orders:read", "orders:write"},
		Audiences: []string{"https://api.example.com"}, MaxCredentialTtl: durationpb.New(15 * time.Minute), Environment: "production"}
}

func publicKey(t *testing.T) (ed25519.PublicKey, string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, pemOf(t, pub)
}

func pemOf(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func (f *fixture) mustPartner(t *testing.T, id string) *treatyv1.CreatePartnerResponse {
	t.Helper()
	resp, err := f.client.CreatePartner(context.Background(), &treatyv1.CreatePartnerRequest{Partner: partnerProto(id), Actor: "alice", Activate: true, ApprovedBy: "test"})
	if err != nil {
		t.Fatalf("create partner %s: %v", id, err)
	}
	return resp
}

func (f *fixture) mustIntegration(t *testing.T, id, partnerID string) *treatyv1.CreateIntegrationResponse {
	t.Helper()
	resp, err := f.client.CreateIntegration(context.Background(), &treatyv1.CreateIntegrationRequest{Integration: integrationProto(id, partnerID), Actor: "alice", Activate: true, ApprovedBy: "test"})
	if err != nil {
		t.Fatalf("create integration %s: %v", id, err)
	}
	return resp
}

func (f *fixture) mustWorkload(t *testing.T, id, integrationID, keyPEM string) *treatyv1.CreateWorkloadResponse {
	t.Helper()
	resp, err := f.client.CreateWorkload(context.Background(), &treatyv1.CreateWorkloadRequest{Id: id, IntegrationId: integrationID, PublicKeyPem: keyPEM, Actor: "alice"})
	if err != nil {
		t.Fatalf("create workload %s: %v", id, err)
	}
	return resp
}

// checkStatus fails unless err is a status with code and, for INVALID_ARGUMENT, a BadRequest
// detail naming field.
func checkStatus(t *testing.T, err error, code codes.Code, field string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || err == nil {
		t.Fatalf("got %v, want status %s", err, code)
	}
	if st.Code() != code {
		t.Fatalf("status %s (%q), want %s", st.Code(), st.Message(), code)
	}
	if code != codes.InvalidArgument {
		return
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) == 1 {
			if got := br.GetFieldViolations()[0].GetField(); got != field {
				t.Fatalf("status names field %q (%q), want %q", got, st.Message(), field)
			}
			return
		}
	}
	t.Fatalf("status %q has no field violation, want one for %q", st.Message(), field)
}

func TestBadRequestsGetExactCodes(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	f.mustPartner(t, "acme")
	f.mustIntegration(t, "orders", "acme")
	_, keyPEM := publicKey(t)
	f.mustWorkload(t, "bot", "orders", keyPEM)
	f.mustPartner(t, "gone")
	f.mustIntegration(t, "gone-orders", "gone")
	if _, err := f.client.OffboardPartner(ctx, &treatyv1.OffboardPartnerRequest{Id: "gone", Reason: "contract ended", Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, freshPEM := publicKey(t)
	high := partnerProto("fort")
	high.RiskTier = treatyv1.RiskTier_RISK_TIER_HIGH
	if _, err := f.client.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Partner: high, Activate: true, ApprovedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	_, secondPEM := publicKey(t)
	f.mustWorkload(t, "two-keys", "orders", secondPEM)
	_, thirdPEM := publicKey(t)
	if _, err := f.client.AddWorkloadKey(ctx, &treatyv1.AddWorkloadKeyRequest{Id: "two-keys", PublicKeyPem: thirdPEM}); err != nil {
		t.Fatal(err)
	}
	addKey := func(id, keyPEM string) func() error {
		return func() error {
			_, err := f.client.AddWorkloadKey(ctx, &treatyv1.AddWorkloadKeyRequest{Id: id, PublicKeyPem: keyPEM})
			return err
		}
	}
	removeKey := func(id, kid string) func() error {
		return func() error {
			_, err := f.client.RemoveWorkloadKey(ctx, &treatyv1.RemoveWorkloadKeyRequest{Id: id, KeyId: kid, Reason: "rotation"})
			return err
		}
	}
	bot, err := f.client.GetWorkload(ctx, &treatyv1.GetWorkloadRequest{Id: "bot"})
	if err != nil {
		t.Fatal(err)
	}
	botKid := bot.GetWorkload().GetPublicKeys()[0].GetKeyId()
	secret := treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_CLIENT_SECRET_BASIC

	partnerWith := func(edit func(*treatyv1.Partner)) *treatyv1.CreatePartnerRequest {
		p := partnerProto("new")
		edit(p)
		return &treatyv1.CreatePartnerRequest{Partner: p}
	}
	integrationWith := func(edit func(*treatyv1.Integration)) *treatyv1.CreateIntegrationRequest {
		i := integrationProto("new", "acme")
		edit(i)
		return &treatyv1.CreateIntegrationRequest{Integration: i}
	}
	createPartner := func(req *treatyv1.CreatePartnerRequest) func() error {
		return func() error { _, err := f.client.CreatePartner(ctx, req); return err }
	}
	createIntegration := func(req *treatyv1.CreateIntegrationRequest) func() error {
		return func() error { _, err := f.client.CreateIntegration(ctx, req); return err }
	}
	createWorkload := func(id, integ, keyPEM string) func() error {
		return func() error {
			_, err := f.client.CreateWorkload(ctx, &treatyv1.CreateWorkloadRequest{Id: id, IntegrationId: integ, PublicKeyPem: keyPEM})
			return err
		}
	}
	tests := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"partner missing", createPartner(&treatyv1.CreatePartnerRequest{}), codes.InvalidArgument, "partner"},
		{"partner id missing", createPartner(partnerWith(func(p *treatyv1.Partner) { p.Id = "" })), codes.InvalidArgument, "partner.id"},
		{"partner id bad", createPartner(partnerWith(func(p *treatyv1.Partner) { p.Id = "ACME" })), codes.InvalidArgument, "partner.id"},
		{"display name missing", createPartner(partnerWith(func(p *treatyv1.Partner) { p.DisplayName = "" })), codes.InvalidArgument, "partner.display_name"},
		{"display name too long", createPartner(partnerWith(func(p *treatyv1.Partner) { p.DisplayName = strings.Repeat("x", 201) })), codes.InvalidArgument, "partner.display_name"},
		{"owner team missing", createPartner(partnerWith(func(p *treatyv1.Partner) { p.OwnerTeam = " " })), codes.InvalidArgument, "partner.owner_team"},
		{"contract end missing", createPartner(partnerWith(func(p *treatyv1.Partner) { p.ContractEndTime = nil })), codes.InvalidArgument, "partner.contract_end_time"},
		{"contract end invalid", createPartner(partnerWith(func(p *treatyv1.Partner) { p.ContractEndTime = &timestamppb.Timestamp{Seconds: 1 << 40} })), codes.InvalidArgument, "partner.contract_end_time"},
		{"contract end past", createPartner(partnerWith(func(p *treatyv1.Partner) { p.ContractEndTime = timestamppb.New(time.Now().Add(-time.Hour)) })), codes.InvalidArgument, "partner.contract_end_time"},
		{"actor too long", createPartner(&treatyv1.CreatePartnerRequest{Partner: partnerProto("new"), Actor: strings.Repeat("a", 300)}), codes.InvalidArgument, "actor"},
		{"risk tier unknown", createPartner(partnerWith(func(p *treatyv1.Partner) { p.RiskTier = 7 })), codes.InvalidArgument, "partner.risk_tier"},
		{"auth method unknown", createIntegration(integrationWith(func(i *treatyv1.Integration) {
			i.AllowedClientAuthMethods = []treatyv1.ClientAuthMethod{0}
		})), codes.InvalidArgument, "integration.allowed_client_auth_methods"},
		{"sender constraint unknown", createIntegration(integrationWith(func(i *treatyv1.Integration) { i.SenderConstraint = 12 })), codes.InvalidArgument, "integration.sender_constraint"},
		{"client secret for a high-tier partner", createIntegration(integrationWith(func(i *treatyv1.Integration) {
			i.PartnerId, i.AllowedClientAuthMethods = "fort", []treatyv1.ClientAuthMethod{secret}
		})), codes.FailedPrecondition, ""},
		{"workload tls two subjects", func() error {
			_, err := f.client.CreateWorkload(ctx, &treatyv1.CreateWorkloadRequest{Id: "new", IntegrationId: "orders",
				TlsClientAuth: &treatyv1.TlsClientAuth{SubjectDn: "CN=a", SanDns: "a.example"}})
			return err
		}, codes.InvalidArgument, "tls_client_auth"},
		{"add key bad id", addKey("", freshPEM), codes.InvalidArgument, "id"},
		{"add key missing", addKey("bot", ""), codes.InvalidArgument, "public_key_pem"},
		{"add key unknown workload", addKey("nobody", freshPEM), codes.NotFound, ""},
		{"add third key", addKey("two-keys", freshPEM), codes.FailedPrecondition, ""},
		{"add key reused", addKey("bot", keyPEM), codes.AlreadyExists, ""},
		{"remove key bad id", removeKey("bot", ""), codes.InvalidArgument, "key_id"},
		{"remove key unknown", removeKey("bot", "nokey"), codes.NotFound, ""},
		{"remove last key", removeKey("bot", botKid), codes.FailedPrecondition, ""},
		{"partner exists", createPartner(&treatyv1.CreatePartnerRequest{Partner: partnerProto("acme")}), codes.AlreadyExists, ""},

		{"get partner bad id", func() error { _, err := f.client.GetPartner(ctx, &treatyv1.GetPartnerRequest{Id: "a b"}); return err }, codes.InvalidArgument, "id"},
		{"get partner unknown", func() error {
			_, err := f.client.GetPartner(ctx, &treatyv1.GetPartnerRequest{Id: "nobody"})
			return err
		}, codes.NotFound, ""},
		{"list partners negative size", func() error {
			_, err := f.client.ListPartners(ctx, &treatyv1.ListPartnersRequest{PageSize: -1})
			return err
		}, codes.InvalidArgument, "page_size"},
		{"list partners bad token", func() error {
			_, err := f.client.ListPartners(ctx, &treatyv1.ListPartnersRequest{PageToken: "not-a-token"})
			return err
		}, codes.InvalidArgument, "page_token"},

		{"suspend no reason", func() error {
			_, err := f.client.SuspendPartner(ctx, &treatyv1.SuspendPartnerRequest{Id: "acme"})
			return err
		}, codes.InvalidArgument, "reason"},
		{"suspend bad id", func() error {
			_, err := f.client.SuspendPartner(ctx, &treatyv1.SuspendPartnerRequest{Id: "", Reason: "r"})
			return err
		}, codes.InvalidArgument, "id"},
		{"suspend unknown", func() error {
			_, err := f.client.SuspendPartner(ctx, &treatyv1.SuspendPartnerRequest{Id: "nobody", Reason: "r"})
			return err
		}, codes.NotFound, ""},
		{"suspend terminated", func() error {
			_, err := f.client.SuspendPartner(ctx, &treatyv1.SuspendPartnerRequest{Id: "gone", Reason: "r"})
			return err
		}, codes.FailedPrecondition, ""},
		{"offboard no reason", func() error {
			_, err := f.client.OffboardPartner(ctx, &treatyv1.OffboardPartnerRequest{Id: "acme", Reason: " "})
			return err
		}, codes.InvalidArgument, "reason"},
		{"offboard terminated", func() error {
			_, err := f.client.OffboardPartner(ctx, &treatyv1.OffboardPartnerRequest{Id: "gone", Reason: "again"})
			return err
		}, codes.FailedPrecondition, ""},

		{"integration missing", createIntegration(&treatyv1.CreateIntegrationRequest{}), codes.InvalidArgument, "integration"},
		{"integration id bad", createIntegration(integrationWith(func(i *treatyv1.Integration) { i.Id = "x_y" })), codes.InvalidArgument, "integration.id"},
		{"integration partner missing", createIntegration(integrationWith(func(i *treatyv1.Integration) { i.PartnerId = "" })), codes.InvalidArgument, "integration.partner_id"},
		{"scopes missing", createIntegration(integrationWith(func(i *treatyv1.Integration) { i.AllowedScopes = nil })), codes.InvalidArgument, "integration.allowed_scopes"},
		{"scope with space", createIntegration(integrationWith(func(i *treatyv1.Integration) { i.AllowedScopes = []string{"a b"} })), codes.InvalidArgument, "integration.allowed_scopes"},
		{"scope repeated", createIntegration(integrationWith(func(i *treatyv1.Integration) { i.AllowedScopes = []string{"a", "a"} })), codes.InvalidArgument, "integration.allowed_scopes"},
		{"audiences missing", createIntegration(integrationWith(func(i *treatyv1.Integration) { i.Audiences = nil })), codes.InvalidArgument, "integration.audiences"},
		{"audience with space", createIntegration(integrationWith(func(i *treatyv1.Integration) { i.Audiences = []string{"my api"} })), codes.InvalidArgument, "integration.audiences"},
		{"ttl missing", createIntegration(integrationWith(func(i *treatyv1.Integration) { i.MaxCredentialTtl = nil })), codes.InvalidArgument, "integration.max_credential_ttl"},
		{"ttl negative", createIntegration(integrationWith(func(i *treatyv1.Integration) { i.MaxCredentialTtl = durationpb.New(-time.Second) })), codes.InvalidArgument, "integration.max_credential_ttl"},
		{"ttl invalid", createIntegration(integrationWith(func(i *treatyv1.Integration) {
			i.MaxCredentialTtl = &durationpb.Duration{Seconds: 1, Nanos: -1}
		})), codes.InvalidArgument, "integration.max_credential_ttl"},
		{"ttl above global max", createIntegration(integrationWith(func(i *treatyv1.Integration) { i.MaxCredentialTtl = durationpb.New(25 * time.Hour) })), codes.InvalidArgument, "integration.max_credential_ttl"},
		{"integration partner unknown", createIntegration(integrationWith(func(i *treatyv1.Integration) { i.PartnerId = "nobody" })), codes.NotFound, ""},
		{"integration partner terminated", createIntegration(integrationWith(func(i *treatyv1.Integration) { i.PartnerId = "gone" })), codes.FailedPrecondition, ""},
		{"integration exists", createIntegration(integrationWith(func(i *treatyv1.Integration) { i.Id = "orders" })), codes.AlreadyExists, ""},

		{"get integration unknown", func() error {
			_, err := f.client.GetIntegration(ctx, &treatyv1.GetIntegrationRequest{Id: "nothing"})
			return err
		}, codes.NotFound, ""},
		{"list integrations bad filter", func() error {
			_, err := f.client.ListIntegrations(ctx, &treatyv1.ListIntegrationsRequest{PartnerId: "Acme"})
			return err
		}, codes.InvalidArgument, "partner_id"},
		{"list integrations negative size", func() error {
			_, err := f.client.ListIntegrations(ctx, &treatyv1.ListIntegrationsRequest{PageSize: -5})
			return err
		}, codes.InvalidArgument, "page_size"},

		{"workload id missing", createWorkload("", "orders", freshPEM), codes.InvalidArgument, "id"},
		{"workload integration bad", createWorkload("new", "Orders", freshPEM), codes.InvalidArgument, "integration_id"},
		{"workload key missing", createWorkload("new", "orders", ""), codes.InvalidArgument, "public_key_pem"},
		{"workload key P-384", createWorkload("new", "orders", pemOf(t, &ecKey.PublicKey)), codes.InvalidArgument, "public_key_pem"},
		{"workload key not pem", createWorkload("new", "orders", "hello"), codes.InvalidArgument, "public_key_pem"},
		{"workload integration unknown", createWorkload("new", "nothing", freshPEM), codes.NotFound, ""},
		{"workload partner terminated", createWorkload("new", "gone-orders", freshPEM), codes.FailedPrecondition, ""},
		{"workload exists", createWorkload("bot", "orders", freshPEM), codes.AlreadyExists, ""},
		{"workload key reused", createWorkload("new", "orders", keyPEM), codes.AlreadyExists, ""},

		{"get workload unknown", func() error {
			_, err := f.client.GetWorkload(ctx, &treatyv1.GetWorkloadRequest{Id: "nobody"})
			return err
		}, codes.NotFound, ""},
		{"get workload bad id", func() error { _, err := f.client.GetWorkload(ctx, &treatyv1.GetWorkloadRequest{}); return err }, codes.InvalidArgument, "id"},
		{"list workloads bad filter", func() error {
			_, err := f.client.ListWorkloads(ctx, &treatyv1.ListWorkloadsRequest{IntegrationId: "-"})
			return err
		}, codes.InvalidArgument, "integration_id"},
	}
	head := f.rev.Head()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkStatus(t, tc.call(), tc.code, tc.field) })
	}
	if f.rev.Head() != head {
		t.Errorf("refused requests published events: head %d, want %d", f.rev.Head(), head)
	}
}

func TestResponsesCarryStoredEntitiesAndSequences(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	p := f.mustPartner(t, "acme")
	if p.GetSequence() == 0 || p.GetSequence() != f.rev.Head() || p.GetPartner().GetState() != treatyv1.PartnerState_PARTNER_STATE_ACTIVE ||
		!p.GetPartner().GetContractEndTime().AsTime().Equal(contractEnd) || p.GetPartner().GetEtag() == "" || p.GetPartner().GetCreateTime() == nil {
		t.Errorf("CreatePartner = %v (head %d)", p, f.rev.Head())
	}
	got, err := f.client.GetPartner(ctx, &treatyv1.GetPartnerRequest{Id: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p.GetPartner(), got.GetPartner(), protocmp.Transform()); diff != "" {
		t.Errorf("GetPartner (-created +got):\n%s", diff)
	}

	i := f.mustIntegration(t, "orders", "acme")
	if i.GetSequence() != p.GetSequence()+1 || i.GetIntegration().GetMaxCredentialTtl().AsDuration() != 15*time.Minute {
		t.Errorf("CreateIntegration = %v", i)
	}
	_, keyPEM := publicKey(t)
	w := f.mustWorkload(t, "bot", "orders", keyPEM)
	if w.GetSequence() != i.GetSequence()+1 || w.GetWorkload().GetPartnerId() != "acme" || len(w.GetWorkload().GetPublicKeys()) != 1 ||
		w.GetWorkload().GetPublicKeys()[0].GetPublicKeyPem() != keyPEM || w.GetWorkload().GetPublicKeys()[0].GetAlgorithm() != "EdDSA" {
		t.Errorf("CreateWorkload = %v", w)
	}
	gw, err := f.client.GetWorkload(ctx, &treatyv1.GetWorkloadRequest{Id: "bot"})
	if err != nil || !cmp.Equal(w.GetWorkload(), gw.GetWorkload(), protocmp.Transform()) {
		t.Errorf("GetWorkload = %v, %v", gw, err)
	}

	lp, err := f.client.ListPartners(ctx, &treatyv1.ListPartnersRequest{PageSize: 1})
	if err != nil || len(lp.GetPartners()) != 1 || lp.GetNextPageToken() != "" {
		t.Errorf("ListPartners = %v, %v", lp, err)
	}
	li, err := f.client.ListIntegrations(ctx, &treatyv1.ListIntegrationsRequest{PartnerId: "acme"})
	if err != nil || len(li.GetIntegrations()) != 1 || li.GetIntegrations()[0].GetId() != "orders" {
		t.Errorf("ListIntegrations = %v, %v", li, err)
	}
	lw, err := f.client.ListWorkloads(ctx, &treatyv1.ListWorkloadsRequest{IntegrationId: "orders"})
	if err != nil || len(lw.GetWorkloads()) != 1 || lw.GetWorkloads()[0].GetId() != "bot" {
		t.Errorf("ListWorkloads = %v, %v", lw, err)
	}

	// Suspension answers with the sequence of the block, which the revoker holds.
	s, err := f.client.SuspendPartner(ctx, &treatyv1.SuspendPartnerRequest{Id: "acme", Reason: "incident", Actor: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := f.rev.State().Partner("acme")
	if s.GetPartner().GetState() != treatyv1.PartnerState_PARTNER_STATE_SUSPENDED || fp.Block == nil || fp.Block.Sequence != s.GetSequence() {
		t.Errorf("SuspendPartner = %v; revoker's block %+v", s, fp.Block)
	}
	o, err := f.client.OffboardPartner(ctx, &treatyv1.OffboardPartnerRequest{Id: "acme", Reason: "ended", Actor: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	fp, _ = f.rev.State().Partner("acme")
	if o.GetPartner().GetState() != treatyv1.PartnerState_PARTNER_STATE_TERMINATED || o.GetSequence() != f.rev.Head() || !fp.Block.Permanent {
		t.Errorf("OffboardPartner = %v; revoker's block %+v at head %d", o, fp.Block, f.rev.Head())
	}
}

func TestUnconfirmedWriteIsUnavailable(t *testing.T) {
	f := start(t)
	f.pub.down.Store(true)
	_, err := f.client.CreatePartner(context.Background(), &treatyv1.CreatePartnerRequest{Partner: partnerProto("acme")})
	checkStatus(t, err, codes.Unavailable, "")
	// The write is committed all the same.
	if _, err := f.client.GetPartner(context.Background(), &treatyv1.GetPartnerRequest{Id: "acme"}); err != nil {
		t.Errorf("GetPartner after an unconfirmed create: %v", err)
	}
}
