package access_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/treaty-dev/treaty/access"
	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestMain(m *testing.M) {
	// The embedded etcd members' HTTP connections (replicas_test.go) outlive their tests briefly.
	goleak.VerifyTestMain(m, etcdtest.LeakOptions()...)
}

func open(t testing.TB) *access.Access {
	t.Helper()
	a, err := access.Open(access.Config{Store: storetest.OpenBolt(t, access.Schema), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

var ctx = context.Background()

func TestCreateAuthenticateDelete(t *testing.T) {
	a := open(t)
	id, tok, err := a.CreateIdentity(ctx, "pdp-eu-1", []access.Role{access.RolePDPClient, access.RoleSubscriber}, true, "alice", "the EU gateway's PDP client")
	if err != nil {
		t.Fatal(err)
	}
	if !access.ValidTokenShape(tok) || !strings.HasPrefix(tok, "trt_") || len(tok) != 47 {
		t.Fatalf("token %q is not a Treaty token", tok)
	}
	if id.Name != "pdp-eu-1" || !id.HasToken || id.CreatedBy != "alice" || id.Reason == "" || id.Created.IsZero() {
		t.Errorf("identity = %+v", id)
	}
	c, err := a.AuthenticateToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "pdp-eu-1" || c.Via != access.ViaToken || !c.Has(access.RolePDPClient) || c.Has(access.RoleOperator) {
		t.Errorf("caller = %+v", c)
	}
	if c, err := a.AuthenticateName("pdp-eu-1"); err != nil || c.Via != access.ViaCertificate {
		t.Errorf("AuthenticateName = %+v, %v", c, err)
	}
	// A certificate-only identity has no token.
	spiffe := "spiffe://example.org/ns/prod/sa/gateway"
	if _, tok2, err := a.CreateIdentity(ctx, spiffe, []access.Role{access.RoleSubscriber}, false, "", "gateway"); err != nil || tok2 != "" {
		t.Fatalf("create certificate identity = %q, %v", tok2, err)
	}
	if c, err := a.AuthenticateName(spiffe); err != nil || !c.Has(access.RoleSubscriber) {
		t.Errorf("AuthenticateName(spiffe) = %+v, %v", c, err)
	}
	list, err := a.ListIdentities(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "pdp-eu-1" || list[1].HasToken {
		t.Errorf("ListIdentities = %+v, %v", list, err)
	}

	if err := a.DeleteIdentity(ctx, "pdp-eu-1", "alice", "decommissioned"); err != nil {
		t.Fatal(err)
	}
	// Refused at once, by token and by certificate name.
	if _, err := a.AuthenticateToken(tok); fail.KindOf(err) != fail.Unauthenticated {
		t.Errorf("deleted identity's token: err = %v, want Unauthenticated", err)
	}
	if _, err := a.AuthenticateName("pdp-eu-1"); fail.KindOf(err) != fail.Unauthenticated {
		t.Errorf("deleted identity's name: err = %v, want Unauthenticated", err)
	}
	if _, err := a.GetIdentity(ctx, "pdp-eu-1"); fail.KindOf(err) != fail.NotFound {
		t.Errorf("GetIdentity(deleted) = %v, want NotFound", err)
	}
}

func TestIdentitiesSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.db")
	st := storetest.OpenBoltAt(t, path, access.Schema)
	a, err := access.Open(access.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	_, tok, err := a.CreateIdentity(ctx, "ops", []access.Role{access.RoleOperator}, true, "", "on call")
	if err != nil {
		t.Fatal(err)
	}
	internal := a.InternalToken()
	a.Close()
	b, err := access.Open(access.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if c, err := b.AuthenticateToken(tok); err != nil || c.Name != "ops" {
		t.Errorf("after reopen: %+v, %v", c, err)
	}
	if _, err := b.AuthenticateToken(internal); err == nil {
		t.Error("the previous process's internal token still works")
	}
	if c, err := b.AuthenticateToken(b.InternalToken()); err != nil || c.Name != access.InternalName || c.Via != access.ViaInternal || !c.Has(access.RoleService) || c.Has(access.RoleAdmin) {
		t.Errorf("internal token: %+v, %v", c, err)
	}
	if _, err := b.AuthenticateName(access.InternalName); err == nil {
		t.Error("the internal caller authenticates by name")
	}
}

func TestRotateToken(t *testing.T) {
	a := open(t)
	_, old, err := a.CreateIdentity(ctx, "ci", []access.Role{access.RoleAuditor}, true, "", "reports")
	if err != nil {
		t.Fatal(err)
	}
	id, tok, err := a.RotateToken(ctx, "ci", "", "leaked in a build log")
	if err != nil || !id.HasToken || id.TokenIssued.IsZero() {
		t.Fatalf("RotateToken = %+v, %v", id, err)
	}
	if _, err := a.AuthenticateToken(old); err == nil {
		t.Error("the old token still works")
	}
	if c, err := a.AuthenticateToken(tok); err != nil || c.Name != "ci" {
		t.Errorf("new token: %+v, %v", c, err)
	}
}

func TestBadInput(t *testing.T) {
	a := open(t)
	if _, _, err := a.CreateIdentity(ctx, "ops", []access.Role{access.RoleOperator}, false, "", "x"); err != nil {
		t.Fatal(err)
	}
	roles := []access.Role{access.RoleAuditor}
	for _, tc := range []struct {
		name string
		err  error
		kind fail.Kind
	}{
		{"bad name", second(a.CreateIdentity(ctx, "Not A Name", roles, false, "", "x")), fail.Invalid},
		{"reserved name", second(a.CreateIdentity(ctx, access.InternalName, roles, false, "", "x")), fail.Invalid},
		{"no roles", second(a.CreateIdentity(ctx, "x", nil, false, "", "x")), fail.Invalid},
		{"unknown role", second(a.CreateIdentity(ctx, "x", []access.Role{"root"}, false, "", "x")), fail.Invalid},
		{"role twice", second(a.CreateIdentity(ctx, "x", []access.Role{"auditor", "auditor"}, false, "", "x")), fail.Invalid},
		{"no reason", second(a.CreateIdentity(ctx, "x", roles, false, "", " ")), fail.Invalid},
		{"duplicate", second(a.CreateIdentity(ctx, "ops", roles, false, "", "x")), fail.AlreadyExists},
		{"delete unknown", a.DeleteIdentity(ctx, "nobody", "", "x"), fail.NotFound},
		{"delete without reason", a.DeleteIdentity(ctx, "ops", "", ""), fail.Invalid},
		{"rotate unknown", second(a.RotateToken(ctx, "nobody", "", "x")), fail.NotFound},
	} {
		if fail.KindOf(tc.err) != tc.kind {
			t.Errorf("%s: err = %v, want kind %v", tc.name, tc.err, tc.kind)
		}
	}
	for _, bad := range []string{"", "trt_", "Bearer x", strings.Repeat("a", 47), "trt_" + strings.Repeat("A", 43)} {
		if _, err := a.AuthenticateToken(bad); fail.KindOf(err) != fail.Unauthenticated {
			t.Errorf("AuthenticateToken(%q) = %v, want Unauthenticated", bad, err)
		}
	}
}

func second(_ access.Identity, _ string, err error) error { return err }

func TestLastAdminStays(t *testing.T) {
	a := open(t)
	path := filepath.Join(t.TempDir(), "admin.credential")
	if _, _, err := a.Bootstrap(path); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteIdentity(ctx, access.BootstrapName, "", "oops"); fail.KindOf(err) != fail.Precondition {
		t.Fatalf("deleting the last admin: %v, want Precondition", err)
	}
	if _, _, err := a.CreateIdentity(ctx, "bob", []access.Role{access.RoleAdmin}, true, "", "second admin"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteIdentity(ctx, access.BootstrapName, "bob", "replaced"); err != nil {
		t.Fatalf("deleting one of two admins: %v", err)
	}
}

func TestBootstrap(t *testing.T) {
	a := open(t)
	path := filepath.Join(t.TempDir(), "admin.credential")
	tok, created, err := a.Bootstrap(path)
	if err != nil || !created {
		t.Fatalf("Bootstrap = %v, %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("credential file mode = %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if string(data) != tok+"\n" {
		t.Errorf("credential file holds %d bytes, want the token and a newline", len(data))
	}
	c, err := a.AuthenticateToken(tok)
	if err != nil || c.Name != "admin" || !c.Has(access.RoleAdmin) || !c.Has(access.RoleService) {
		t.Errorf("admin caller = %+v, %v", c, err)
	}
	// Idempotent: a second start changes nothing.
	tok2, created, err := a.Bootstrap(path)
	if err != nil || created || tok2 != "" {
		t.Fatalf("second Bootstrap = %q, %v, %v; want nothing", tok2, created, err)
	}
	if again, _ := os.ReadFile(path); string(again) != string(data) {
		t.Error("the second Bootstrap rewrote the credential file")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("the data folder holds %d files, want only the credential", len(entries))
	}
}

// On an empty store, a token an operator placed in the credential file (one admin token for
// the processes of a split deployment) is adopted; a file others may read, or one without a
// Treaty token, is refused and nothing is created.
func TestBootstrapAdoptsProvisionedToken(t *testing.T) {
	provisioned, err := access.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr string
	}{
		{"adopted", provisioned + "\n", 0o600, ""},
		{"readable by others", provisioned + "\n", 0o644, "chmod 600"},
		{"not a token", "hunter2\n", 0o600, "does not hold a Treaty token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := open(t)
			path := filepath.Join(t.TempDir(), "admin.credential")
			if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, tc.mode) // past the umask
			tok, created, err := a.Bootstrap(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || created {
					t.Fatalf("Bootstrap = %v, %v; want an error saying %q", created, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), strings.TrimSpace(tc.content)) {
					t.Error("the error repeats the file's content")
				}
				if ids, _ := a.ListIdentities(context.Background()); len(ids) != 0 {
					t.Errorf("identities after a refused bootstrap: %v", ids)
				}
				return
			}
			if err != nil || !created || tok != "" {
				t.Fatalf("Bootstrap = %q, %v, %v; want created with no new token", tok, created, err)
			}
			if c, err := a.AuthenticateToken(provisioned); err != nil || c.Name != access.BootstrapName {
				t.Errorf("the provisioned token authenticates as %+v, %v", c, err)
			}
			if now, _ := os.ReadFile(path); string(now) != tc.content {
				t.Error("adopting rewrote the credential file")
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	st := storetest.OpenBolt(t, access.Schema)
	now := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	a, err := access.Open(access.Config{Store: st, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	a.RecordRefusal(access.Refusal{Method: "/treaty.v1.RegistryService/CreatePartner", Code: "UNAUTHENTICATED", Reason: "no credential", Peer: "127.0.0.1:5000"})
	a.RecordRefusal(access.Refusal{Caller: "ops", Via: access.ViaToken, Method: "/treaty.v1.AdminService/Backup", Code: "PERMISSION_DENIED", Reason: strings.Repeat("x", 4000)})
	// Close flushes the queue.
	a.Close()
	a.RecordRefusal(access.Refusal{Method: "after close"}) // ignored, and no panic
	b, err := access.Open(access.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got, err := b.Refusals(0, 0)
	if err != nil || len(got) != 2 {
		t.Fatalf("Refusals = %+v, %v", got, err)
	}
	if got[0].Sequence != 1 || got[0].Caller != "" || got[0].Code != "UNAUTHENTICATED" || !got[0].Time.Equal(now) || got[0].Peer != "127.0.0.1:5000" {
		t.Errorf("first = %+v", got[0])
	}
	if got[1].Sequence != 2 || got[1].Caller != "ops" || got[1].Via != "token" || len(got[1].Reason) > 512 {
		t.Errorf("second = %+v (reason %d bytes)", got[1], len(got[1].Reason))
	}
	if page, _ := b.Refusals(1, 10); len(page) != 1 || page[0].Sequence != 2 {
		t.Errorf("Refusals(after 1) = %+v", page)
	}
	if _, err := b.Refusals(0, access.MaxRefusalPage+1); fail.KindOf(err) != fail.Invalid {
		t.Errorf("oversized page: %v", err)
	}
	if page, err := b.Refusals(^uint64(0), 10); err != nil || len(page) != 0 {
		t.Errorf("Refusals(after max) = %+v, %v", page, err)
	}
}

// TestRefusalFlood queues far more refusals than the queue holds, from several goroutines: none
// blocks, and every refusal is either written or counted as dropped.
func TestRefusalFlood(t *testing.T) {
	a := open(t)
	const n, workers = 5000, 4
	done := make(chan struct{})
	for w := 0; w < workers; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < n; i++ {
				a.RecordRefusal(access.Refusal{Method: "/x", Code: "UNAUTHENTICATED"})
			}
		}()
	}
	for w := 0; w < workers; w++ {
		<-done
	}
	a.Close()
	written := uint64(len(allRefusals(t, a)))
	if written+a.DroppedRefusals() != n*workers {
		t.Errorf("written %d + dropped %d != %d", written, a.DroppedRefusals(), n*workers)
	}
}

// allRefusals reads every recorded refusal, page by page.
func allRefusals(t *testing.T, a *access.Access) []access.Refusal {
	t.Helper()
	var all []access.Refusal
	for after := uint64(0); ; {
		page, err := a.Refusals(after, access.MaxRefusalPage)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		after = page[len(page)-1].Sequence
	}
}

func TestAuthenticateDoesNotAllocate(t *testing.T) {
	a := open(t)
	_, tok, err := a.CreateIdentity(ctx, "pdp", []access.Role{access.RolePDPClient}, true, "", "x")
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := a.AuthenticateToken(tok); err != nil {
			t.Fatal(err)
		}
		if _, err := a.AuthenticateName("pdp"); err != nil {
			t.Fatal(err)
		}
		_, _ = a.AuthenticateToken("trt_" + "bad")
	}); n != 0 {
		t.Errorf("authentication allocates %v times per call", n)
	}
}

func BenchmarkAuthenticateToken(b *testing.B) {
	a := open(b)
	for i := range 100 {
		if _, _, err := a.CreateIdentity(ctx, "svc-"+string(rune('a'+i%26))+string(rune('a'+i/26)), []access.Role{access.RolePDPClient}, true, "", "x"); err != nil {
			b.Fatal(err)
		}
	}
	_, tok, _ := a.CreateIdentity(ctx, "pdp", []access.Role{access.RolePDPClient}, true, "", "x")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.AuthenticateToken(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRefusalRetention keeps the newest refusals only, with their sequences.
func TestRefusalRetention(t *testing.T) {
	defer access.SetMaxRefusals(10)()
	st := storetest.OpenBolt(t, access.Schema)
	a, err := access.Open(access.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 25; i++ {
		a.RecordRefusal(access.Refusal{Method: "/x", Code: "UNAUTHENTICATED"})
	}
	a.Close()
	got, err := a.Refusals(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	// 25 refusals fit in the queue: none is dropped, the oldest 15 are trimmed.
	if len(got) != 10 || got[0].Sequence != 16 || got[9].Sequence != 25 {
		t.Errorf("kept %d refusals: %+v", len(got), got)
	}
}
