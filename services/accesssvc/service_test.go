package accesssvc_test

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/treaty-dev/treaty/access"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/accesssvc"
	"github.com/treaty-dev/treaty/services/authn"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var ctx = context.Background()

// start bootstraps an access store and serves AccessService behind authn's interceptors on
// loopback; it returns the store and a client factory by token.
func start(t *testing.T) (*access.Access, string, func(token string) treatyv1.AccessServiceClient) {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	acc, err := access.Open(access.Config{Store: storetest.OpenBolt(t, access.Schema), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	admin, created, err := acc.Bootstrap(filepath.Join(t.TempDir(), "admin.credential"))
	if err != nil || !created {
		t.Fatalf("bootstrap: %v %v", created, err)
	}
	a := authn.New(authn.Config{Access: acc, Logger: quiet})
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(a.Unary()), grpc.ChainStreamInterceptor(a.Stream()))
	accesssvc.New(accesssvc.Config{Access: acc, Logger: quiet}).Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-served; acc.Close() })
	client := func(token string) treatyv1.AccessServiceClient {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(authn.Token(token)))
		}
		conn, err := grpc.NewClient(lis.Addr().String(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return treatyv1.NewAccessServiceClient(conn)
	}
	return acc, admin, client
}

func TestIdentityLifecycle(t *testing.T) {
	_, adminTok, client := start(t)
	admin := client(adminTok)
	who, err := admin.WhoAmI(ctx, &treatyv1.WhoAmIRequest{})
	if err != nil || who.GetName() != "admin" || who.GetVia() != "token" || strings.Join(who.GetRoles(), ",") != "admin" {
		t.Fatalf("WhoAmI(admin) = %v, %v", who, err)
	}
	created, err := admin.CreateIdentity(ctx, &treatyv1.CreateIdentityRequest{
		Name: "ci", Roles: []string{"auditor"}, IssueToken: true, Reason: "nightly compliance report", Actor: "alice",
	})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetIdentity()
	if !strings.HasPrefix(created.GetToken(), "trt_") || id.GetName() != "ci" || !id.GetHasToken() || id.GetCreatedBy() != "admin/alice" ||
		id.GetTokenIssueTime() == nil || id.GetReason() != "nightly compliance report" {
		t.Errorf("CreateIdentity = %v (token %d bytes)", id, len(created.GetToken()))
	}
	ci := client(created.GetToken())
	if who, err := ci.WhoAmI(ctx, &treatyv1.WhoAmIRequest{}); err != nil || who.GetName() != "ci" || who.GetRoles()[0] != "auditor" {
		t.Errorf("WhoAmI(ci) = %v, %v", who, err)
	}
	// An auditor reads refusals, and its own refusal is among them.
	_, err = ci.CreateIdentity(ctx, &treatyv1.CreateIdentityRequest{Name: "x", Roles: []string{"admin"}, Reason: "escalate"})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "treaty.v1.AccessService/CreateIdentity needs the role admin") {
		t.Errorf("auditor creating an identity: %v", err)
	}
	var refusals []*treatyv1.Refusal
	for range 500 {
		resp, err := ci.ListRefusals(ctx, &treatyv1.ListRefusalsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if refusals = resp.GetRefusals(); len(refusals) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond) // the refusal writer works in the background
	}
	if len(refusals) != 1 || refusals[0].GetCaller() != "ci" || refusals[0].GetCode() != "PERMISSION_DENIED" || refusals[0].GetSequence() != 1 {
		t.Errorf("refusals = %v", refusals)
	}
	list, err := admin.ListIdentities(ctx, &treatyv1.ListIdentitiesRequest{})
	if err != nil || len(list.GetIdentities()) != 2 || list.GetIdentities()[0].GetName() != "admin" || list.GetIdentities()[1].GetName() != "ci" {
		t.Errorf("ListIdentities = %v, %v", list, err)
	}
	if got, err := admin.GetIdentity(ctx, &treatyv1.GetIdentityRequest{Name: "ci"}); err != nil || got.GetIdentity().GetName() != "ci" {
		t.Errorf("GetIdentity = %v, %v", got, err)
	}
	rotated, err := admin.RotateToken(ctx, &treatyv1.RotateTokenRequest{Name: "ci", Reason: "leaked in a build log"})
	if err != nil || rotated.GetToken() == created.GetToken() || !rotated.GetIdentity().GetHasToken() {
		t.Fatalf("RotateToken = %v, %v", rotated.GetIdentity(), err)
	}
	if _, err := ci.WhoAmI(ctx, &treatyv1.WhoAmIRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("the rotated-out token's WhoAmI: %v, want Unauthenticated", err)
	}
	ci = client(rotated.GetToken())
	if _, err := ci.WhoAmI(ctx, &treatyv1.WhoAmIRequest{}); err != nil {
		t.Errorf("the new token's WhoAmI: %v", err)
	}
	if _, err := admin.DeleteIdentity(ctx, &treatyv1.DeleteIdentityRequest{Name: "ci", Reason: "report moved"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ci.WhoAmI(ctx, &treatyv1.WhoAmIRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("deleted identity's WhoAmI: %v, want Unauthenticated", err)
	}
	if _, err := client("").WhoAmI(ctx, &treatyv1.WhoAmIRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("anonymous WhoAmI: %v, want Unauthenticated", err)
	}
}

func TestErrors(t *testing.T) {
	_, adminTok, client := start(t)
	admin := client(adminTok)
	if _, err := admin.CreateIdentity(ctx, &treatyv1.CreateIdentityRequest{Name: "ops", Roles: []string{"operator"}, Reason: "on call"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"bad name", func() error {
			_, err := admin.CreateIdentity(ctx, &treatyv1.CreateIdentityRequest{Name: "Ops Team", Roles: []string{"operator"}, Reason: "x"})
			return err
		}, codes.InvalidArgument, "name"},
		{"no roles", func() error {
			_, err := admin.CreateIdentity(ctx, &treatyv1.CreateIdentityRequest{Name: "x", Reason: "x"})
			return err
		}, codes.InvalidArgument, "roles"},
		{"unknown role", func() error {
			_, err := admin.CreateIdentity(ctx, &treatyv1.CreateIdentityRequest{Name: "x", Roles: []string{"root"}, Reason: "x"})
			return err
		}, codes.InvalidArgument, "role"},
		{"no reason", func() error {
			_, err := admin.CreateIdentity(ctx, &treatyv1.CreateIdentityRequest{Name: "x", Roles: []string{"auditor"}})
			return err
		}, codes.InvalidArgument, "reason"},
		{"reserved name", func() error {
			_, err := admin.CreateIdentity(ctx, &treatyv1.CreateIdentityRequest{Name: access.InternalName, Roles: []string{"auditor"}, Reason: "x"})
			return err
		}, codes.InvalidArgument, "name"},
		{"exists", func() error {
			_, err := admin.CreateIdentity(ctx, &treatyv1.CreateIdentityRequest{Name: "ops", Roles: []string{"auditor"}, Reason: "x"})
			return err
		}, codes.AlreadyExists, ""},
		{"get unknown", func() error {
			_, err := admin.GetIdentity(ctx, &treatyv1.GetIdentityRequest{Name: "nobody"})
			return err
		}, codes.NotFound, ""},
		{"get malformed", func() error {
			_, err := admin.GetIdentity(ctx, &treatyv1.GetIdentityRequest{})
			return err
		}, codes.InvalidArgument, "name"},
		{"delete without reason", func() error {
			_, err := admin.DeleteIdentity(ctx, &treatyv1.DeleteIdentityRequest{Name: "ops"})
			return err
		}, codes.InvalidArgument, "reason"},
		{"delete the last admin", func() error {
			_, err := admin.DeleteIdentity(ctx, &treatyv1.DeleteIdentityRequest{Name: "admin", Reason: "oops"})
			return err
		}, codes.FailedPrecondition, ""},
		{"delete unknown", func() error {
			_, err := admin.DeleteIdentity(ctx, &treatyv1.DeleteIdentityRequest{Name: "nobody", Reason: "x"})
			return err
		}, codes.NotFound, ""},
		{"rotate without reason", func() error {
			_, err := admin.RotateToken(ctx, &treatyv1.RotateTokenRequest{Name: "ops"})
			return err
		}, codes.InvalidArgument, "reason"},
		{"rotate unknown", func() error {
			_, err := admin.RotateToken(ctx, &treatyv1.RotateTokenRequest{Name: "nobody", Reason: "x"})
			return err
		}, codes.NotFound, ""},
		{"oversized page", func() error {
			_, err := admin.ListRefusals(ctx, &treatyv1.ListRefusalsRequest{PageSize: 1001})
			return err
		}, codes.InvalidArgument, "page_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != tc.code {
				t.Fatalf("code = %v (%v), want %v", status.Code(err), err, tc.code)
			}
			if got := field(err); got != tc.field {
				t.Errorf("field = %q, want %q", got, tc.field)
			}
		})
	}
}

func field(err error) string {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}
