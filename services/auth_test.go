package services

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/treaty-dev/treaty/access"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/authn"
	"github.com/treaty-dev/treaty/services/authzen"
)

// dialToken returns a connection to srv sending tok ("" sends none).
func dialToken(t *testing.T, srv *Server, tok string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if tok != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(authn.Token(tok)))
	}
	conn, err := grpc.NewClient(srv.Addr(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// The first start on an empty data folder creates the admin identity and its token file (0600);
// later starts create nothing. The token authenticates as admin.
func TestBootstrapAdminCredential(t *testing.T) {
	dir := t.TempDir()
	srv, conn := serve(t, Config{DataDir: dir, Services: []string{Revoker}})
	path := filepath.Join(dir, AdminCredentialFile)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("credential file mode %v, want 0600", mode)
	}
	written, _ := access.ReadTokenFile(path)
	if srv.BootstrapToken() == "" || srv.BootstrapToken() != written {
		t.Error("the first start did not report the token it wrote")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	who, err := treatyv1.NewAccessServiceClient(conn).WhoAmI(ctx, &treatyv1.WhoAmIRequest{})
	if err != nil || who.GetName() != "admin" {
		t.Fatalf("WhoAmI with the bootstrap token: %v %v, want admin", who, err)
	}
	srv.Shutdown()

	again, _ := serve(t, Config{DataDir: dir, Services: []string{Revoker}})
	if again.BootstrapToken() != "" {
		t.Error("a second start created another admin token")
	}
	if now, _ := access.ReadTokenFile(path); now != written {
		t.Error("a second start rewrote the credential file")
	}
}

// Callers are refused by what they lack: a credential (UNAUTHENTICATED) or a role
// (PERMISSION_DENIED, recorded); public methods need neither.
func TestCallersNeedIdentityAndRole(t *testing.T) {
	srv, admin := serve(t, Config{Services: []string{Registry, Revoker}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	accessAdmin := treatyv1.NewAccessServiceClient(admin)
	created, err := accessAdmin.CreateIdentity(ctx, &treatyv1.CreateIdentityRequest{
		Name: "siem", Roles: []string{"auditor"}, IssueToken: true, Reason: "read-only export for the SIEM",
	})
	if err != nil {
		t.Fatal(err)
	}
	anonymous := dialToken(t, srv, "")
	auditor := dialToken(t, srv, created.GetToken())
	forged := dialToken(t, srv, "trt_"+strings.Repeat("A", 43))

	if _, err := healthpb.NewHealthClient(anonymous).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health without a credential: %v, want served", err)
	}
	tests := []struct {
		name string
		conn *grpc.ClientConn
		call func(treatyv1.RegistryServiceClient) error
		want codes.Code
	}{
		{"no credential", anonymous, func(c treatyv1.RegistryServiceClient) error {
			_, err := c.ListPartners(ctx, &treatyv1.ListPartnersRequest{})
			return err
		}, codes.Unauthenticated},
		{"unknown token", forged, func(c treatyv1.RegistryServiceClient) error {
			_, err := c.ListPartners(ctx, &treatyv1.ListPartnersRequest{})
			return err
		}, codes.Unauthenticated},
		{"auditor reads", auditor, func(c treatyv1.RegistryServiceClient) error {
			_, err := c.ListPartners(ctx, &treatyv1.ListPartnersRequest{})
			return err
		}, codes.OK},
		{"auditor writes", auditor, func(c treatyv1.RegistryServiceClient) error {
			_, err := c.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Partner: &treatyv1.Partner{Id: "acme"}})
			return err
		}, codes.PermissionDenied},
	}
	for _, tc := range tests {
		if err := tc.call(treatyv1.NewRegistryServiceClient(tc.conn)); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	// The refusals are on record, the auditor's by name.
	deadline := time.Now().Add(10 * time.Second)
	for {
		refusals, err := accessAdmin.ListRefusals(ctx, &treatyv1.ListRefusalsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var sawAuditor bool
		for _, r := range refusals.GetRefusals() {
			sawAuditor = sawAuditor || (r.GetCaller() == "siem" && strings.HasSuffix(r.GetMethod(), "/CreatePartner"))
		}
		if len(refusals.GetRefusals()) >= 3 && sawAuditor {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("refusals on record: %v, want the three, the auditor's CreatePartner among them", refusals.GetRefusals())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// One identity's administrative calls beyond its burst are refused with RESOURCE_EXHAUSTED,
// while Treaty's own services (the registry publishing to the revoker) are not throttled.
func TestAdminRateLimit(t *testing.T) {
	_, admin := serve(t, Config{Services: []string{Registry, Revoker}, RateLimits: RateLimits{Admin: 0.001, AdminBurst: 3}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg := treatyv1.NewRegistryServiceClient(admin)
	var codesSeen []codes.Code
	for range 5 {
		_, err := reg.ListPartners(ctx, &treatyv1.ListPartnersRequest{})
		codesSeen = append(codesSeen, status.Code(err))
	}
	want := []codes.Code{codes.OK, codes.OK, codes.OK, codes.ResourceExhausted, codes.ResourceExhausted}
	for i := range want {
		if codesSeen[i] != want[i] {
			t.Fatalf("codes %v, want %v", codesSeen, want)
		}
	}
	// Decisions and health are never throttled.
	if _, err := healthpb.NewHealthClient(admin).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health after the burst: %v", err)
	}
}

// AuthZEN evaluations need a pdp-client like the gRPC Check; the metadata document is public.
func TestAuthZENNeedsACaller(t *testing.T) {
	srv, _ := serve(t, Config{HTTPListen: "127.0.0.1:0"})
	base := "http://" + srv.HTTPAddr()
	resp, err := http.Get(base + authzen.PathMetadata)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("metadata: %s, want 200", resp.Status)
	}
	resp, err = http.Post(base+authzen.PathEvaluation, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("evaluation without a credential: %s, want 401", resp.Status)
	}
}
