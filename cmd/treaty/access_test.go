package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/treaty-dev/treaty/access"
	"github.com/treaty-dev/treaty/services/accesssvc"
	"github.com/treaty-dev/treaty/services/authn"
	"github.com/treaty-dev/treaty/store/storetest"
)

// accessServer serves AccessService behind authn's interceptors on loopback. Until the CLI sends
// credentials itself, a test interceptor in front presents the bootstrapped admin's token (or
// token, if set) for every call.
func accessServer(t *testing.T, token *string) (*access.Access, string) {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	acc, err := access.Open(access.Config{Store: storetest.OpenBolt(t, access.Schema), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	admin, _, err := acc.Bootstrap(filepath.Join(t.TempDir(), "admin.credential"))
	if err != nil {
		t.Fatal(err)
	}
	if *token == "" {
		*token = admin
	}
	present := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return handler(metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+*token)), req)
	}
	a := authn.New(authn.Config{Access: acc, Logger: quiet})
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(present, a.Unary()))
	accesssvc.New(accesssvc.Config{Access: acc, Logger: quiet}).Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-served; acc.Close() })
	return acc, lis.Addr().String()
}

func TestAccessCommands(t *testing.T) {
	var token string
	acc, addr := accessServer(t, &token)
	cli := func(args ...string) (int, string, string) {
		return treaty(t, append(args, "--server", addr, "--actor", "alice")...)
	}
	code, out, errOut := cli("access", "whoami")
	if code != exitOK || !strings.Contains(out, "name:   admin") || !strings.Contains(out, "via:    token") {
		t.Fatalf("whoami = %d %q %q", code, out, errOut)
	}
	code, out, errOut = cli("access", "create", "spiffe://example.org/ci", "--role", "auditor", "--role", "pdp-client", "--token", "--reason", "nightly report", "-o", "json")
	if code != exitOK {
		t.Fatalf("create = %d %q", code, errOut)
	}
	var created struct {
		Identity struct {
			Name      string   `json:"name"`
			Roles     []string `json:"roles"`
			CreatedBy string   `json:"created_by"`
			HasToken  bool     `json:"has_token"`
		} `json:"identity"`
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("create -o json: %v: %s", err, out)
	}
	if created.Identity.Name != "spiffe://example.org/ci" || strings.Join(created.Identity.Roles, ",") != "auditor,pdp-client" ||
		created.Identity.CreatedBy != "admin/alice" || !created.Identity.HasToken || !access.ValidTokenShape(created.Token) {
		t.Errorf("created = %+v", created)
	}
	code, out, errOut = cli("access", "create", "ops", "--role", "operator", "--reason", "on call")
	if code != exitOK || !strings.Contains(out, "token:") || strings.Contains(out, "token value") || strings.Contains(errOut, "store this token") {
		t.Errorf("create without a token = %d %q %q", code, out, errOut)
	}
	code, out, _ = cli("access", "list")
	if code != exitOK || !strings.Contains(out, "NAME") || !strings.Contains(out, "spiffe://example.org/ci  auditor,pdp-client  yes") || !strings.Contains(out, "ops ") {
		t.Errorf("list = %d\n%s", code, out)
	}
	code, out, _ = cli("access", "get", "ops", "-o", "csv")
	if code != exitOK || !strings.HasPrefix(out, "name,roles,token,created,created_by,reason,token_issued\nops,operator,no,") {
		t.Errorf("get -o csv = %d\n%s", code, out)
	}
	code, out, errOut = cli("access", "rotate", "ops", "--reason", "first token")
	if code != exitOK || !strings.Contains(out, "token value:") || !strings.Contains(errOut, "store this token now") {
		t.Errorf("rotate = %d %q %q", code, out, errOut)
	}
	// The new identity, as the caller: refused, and the refusal is listed.
	token = created.Token
	code, _, errOut = cli("access", "list")
	if code != exitError || !strings.Contains(errOut, "PERMISSION_DENIED") || !strings.Contains(errOut, "needs the role admin") {
		t.Errorf("list as an auditor = %d %q", code, errOut)
	}
	waitFor(t, "the refusal", func() bool { r, _ := acc.Refusals(0, 10); return len(r) == 1 })
	code, out, _ = cli("access", "refusals")
	if code != exitOK || !strings.Contains(out, "PERMISSION_DENIED  spiffe://example.org/ci  /treaty.v1.AccessService/ListIdentities") {
		t.Errorf("refusals = %d\n%s", code, out)
	}
	token = ""
	code, out, errOut = cli("access", "delete", "ops", "--reason", "rotation ended")
	if code != exitError || !strings.Contains(errOut, "UNAUTHENTICATED") {
		t.Errorf("delete with no credential = %d %q %q", code, out, errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"access", "create", "Bad Name", "--role", "auditor", "--reason", "x"}, "not valid"},
		{[]string{"access", "create", "x", "--reason", "x"}, "--role is required"},
		{[]string{"access", "create", "x", "--role", "root", "--reason", "x"}, "not a role"},
		{[]string{"access", "create", "x", "--role", "auditor"}, "--reason is required"},
		{[]string{"access", "delete", "ops"}, "--reason is required"},
		{[]string{"access", "rotate", "ops"}, "--reason is required"},
		{[]string{"access", "refusals", "--limit", "-1"}, "--limit"},
	} {
		if code, _, errOut := cli(tc.args...); code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v = %d %q, want a usage error saying %q", tc.args, code, errOut, tc.want)
		}
	}
}
