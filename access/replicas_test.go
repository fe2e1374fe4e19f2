package access_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/access"
	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/internal/logtest"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/etcdstore"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
)

// Replicas: several Access instances over one etcd prefix, each with its own etcdstore.Store (as
// separate processes have), as replicas behind one load balancer run.

// openReplica opens an Access on its own store at prefix of c. With hideWatch the store is
// offered without its store.Watcher, so the replica never learns of the others' writes by itself:
// what its view holds is what it read at Open or wrote.
func openReplica(t *testing.T, c *etcdtest.Cluster, prefix string, hideWatch bool, log *logtest.Buffer) *access.Access {
	t.Helper()
	st, err := etcdstore.Open(c.Client(), prefix, access.Schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var s store.Store = st
	if hideWatch {
		s = struct{ store.Store }{st}
	}
	cfg := access.Config{Store: s, Logger: slog.New(slog.DiscardHandler)}
	if log != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	a, err := access.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// eventually polls cond for up to 10 s: another replica's write reaches this one through an
// asynchronous watch.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func authenticates(a *access.Access, tok, name string) bool {
	c, err := a.AuthenticateToken(tok)
	return err == nil && c.Name == name
}

func knowsName(a *access.Access, name string) bool {
	_, err := a.AuthenticateName(name)
	return err == nil
}

// An identity created, rotated or deleted through one replica is created, rotated or deleted on
// the other, both ways, by token and by certificate name.
func TestReplicasFollowIdentities(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := openReplica(t, c, "/access", false, nil)
	b := openReplica(t, c, "/access", false, nil)

	_, tok, err := a.CreateIdentity(ctx, "pdp-eu-1", []access.Role{access.RolePDPClient}, true, "alice", "the EU gateway")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the identity created on A does not authenticate on B", func() bool {
		return authenticates(b, tok, "pdp-eu-1") && knowsName(b, "pdp-eu-1")
	})
	if cl, _ := b.AuthenticateToken(tok); !cl.Has(access.RolePDPClient) || cl.Has(access.RoleOperator) {
		t.Errorf("on B the caller is %+v", cl)
	}

	_, rotated, err := a.RotateToken(ctx, "pdp-eu-1", "alice", "leaked")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the token rotated on A still works on B, or the new one does not", func() bool {
		return !authenticates(b, tok, "pdp-eu-1") && authenticates(b, rotated, "pdp-eu-1")
	})

	// The other way: B writes, A follows.
	_, tokB, err := b.CreateIdentity(ctx, "ops", []access.Role{access.RoleOperator}, true, "alice", "on call")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the identity created on B does not authenticate on A", func() bool { return authenticates(a, tokB, "ops") })

	if err := a.DeleteIdentity(ctx, "pdp-eu-1", "alice", "decommissioned"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the identity deleted on A still authenticates on B", func() bool {
		return !authenticates(b, rotated, "pdp-eu-1") && !knowsName(b, "pdp-eu-1")
	})
	if _, err := b.AuthenticateToken(rotated); fail.KindOf(err) != fail.Unauthenticated {
		t.Errorf("deleted identity on B: %v, want Unauthenticated", err)
	}
	// B reads what A wrote; a write on B of A's deleted identity finds it gone.
	if _, err := b.GetIdentity(ctx, "pdp-eu-1"); fail.KindOf(err) != fail.NotFound {
		t.Errorf("GetIdentity on B = %v, want NotFound", err)
	}
	if _, _, err := b.RotateToken(ctx, "pdp-eu-1", "alice", "x"); fail.KindOf(err) != fail.NotFound {
		t.Errorf("RotateToken on B = %v, want NotFound", err)
	}
}

// A replica cut off from etcd keeps the identities it last saw, and catches up when it
// reconnects: the watch resumes and the view reloads.
func TestReplicaCutOffCatchesUp(t *testing.T) {
	c := etcdtest.Start(t, 3)
	a := openReplica(t, c, "/access", false, nil)
	// B talks to member 2 only, which is stopped below.
	st, err := etcdstore.Open(c.Client(c.Endpoint(2)), "/access", access.Schema, etcdstore.WithRequestTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b, err := access.Open(access.Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })

	_, tok, err := a.CreateIdentity(ctx, "gw", []access.Role{access.RoleSubscriber}, true, "alice", "gateway")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "B does not see the identity", func() bool { return authenticates(b, tok, "gw") })

	c.Stop(2)
	if err := a.DeleteIdentity(ctx, "gw", "alice", "decommissioned"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if !authenticates(b, tok, "gw") {
		t.Fatal("B, cut off from etcd, dropped an identity it could not have learnt was deleted")
	}
	c.Restart(2)
	eventually(t, "B, reconnected, still authenticates the identity deleted while it was cut off", func() bool {
		return !authenticates(b, tok, "gw")
	})
}

// Refusals recorded on two replicas at once are all kept, each once, numbered 1..n without a
// gap: each batch reads the log's last sequence in its transaction, so two replicas never write
// the same sequence. Each refusal here is as large as a refusal may be (every field at its
// bound), so a full batch would not fit in one etcd request.
func TestReplicasRecordEveryRefusal(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := openReplica(t, c, "/access", false, nil)
	b := openReplica(t, c, "/access", false, nil)
	const perReplica = 1500
	big := strings.Repeat("x", 600) // cut to 512 bytes
	var wg sync.WaitGroup
	for _, r := range []struct {
		name string
		a    *access.Access
	}{{"a", a}, {"b", b}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perReplica {
				r.a.RecordRefusal(access.Refusal{
					Caller: big, Via: big, Method: fmt.Sprintf("/%s/%d/%s", r.name, i, big), Code: big, Reason: big, Peer: big,
				})
			}
		}()
	}
	wg.Wait()
	a.Close() // flushes
	b.Close()
	if d := a.DroppedRefusals() + b.DroppedRefusals(); d != 0 {
		t.Fatalf("%d refusals dropped; the queue holds %d", d, access.RefusalQueue)
	}
	seen := map[string]int{}
	var n uint64
	for _, r := range allRefusals(t, a) {
		if n++; r.Sequence != n {
			t.Fatalf("refusal %d follows %d: a gap", r.Sequence, n-1)
		}
		who, _, _ := strings.Cut(strings.TrimPrefix(r.Method, "/"), "/"+big[:1])
		seen[who]++
		if len(r.Reason) != 512 {
			t.Fatalf("refusal %d: reason of %d bytes, want 512", r.Sequence, len(r.Reason))
		}
	}
	if n != 2*perReplica || len(seen) != 2*perReplica {
		t.Fatalf("%d refusals recorded (%d distinct), want %d each once", n, len(seen), 2*perReplica)
	}
}

// The second replica's bootstrap, on its own data folder, finds the admin the first created in
// the shared store: it creates none, and its log says where the credential is, or whether the
// credential file placed in its data folder holds a valid token.
func TestReplicasBootstrap(t *testing.T) {
	c := etcdtest.Start(t, 1)
	first := openReplica(t, c, "/access", false, nil)
	firstFile := filepath.Join(t.TempDir(), "admin.credential")
	tok, created, err := first.Bootstrap(firstFile)
	if err != nil || !created || tok == "" {
		t.Fatalf("first Bootstrap = %v, %v", created, err)
	}
	stranger, _ := access.NewToken()
	tests := []struct {
		name     string
		file     string // the credential file placed in the new data folder; "" for none
		wantLog  string
		wantWarn bool
	}{
		{"no credential file", "", "the admin identity exists in the shared access store", false},
		{"the first's credential", tok + "\n", "holds a valid token", false},
		{"an unknown token", stranger + "\n", "holds a token none of them has", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log logtest.Buffer
			r := openReplica(t, c, "/access", false, &log)
			path := filepath.Join(t.TempDir(), "admin.credential")
			if tc.file != "" {
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, created, err := r.Bootstrap(path)
			if err != nil || created || got != "" {
				t.Fatalf("Bootstrap = %v, %v; want nothing created", created, err)
			}
			if data, err := os.ReadFile(path); tc.file == "" && err == nil {
				t.Error("the second replica wrote a credential file")
			} else if tc.file != "" && string(data) != tc.file {
				t.Error("the second replica rewrote the credential file")
			}
			if !strings.Contains(log.String(), tc.wantLog) || strings.Contains(log.String(), "level=WARN") != tc.wantWarn {
				t.Errorf("log = %q, want %q (warning %v)", log.String(), tc.wantLog, tc.wantWarn)
			}
			if strings.Contains(log.String(), tok) || strings.Contains(log.String(), stranger) {
				t.Error("the log holds a token")
			}
			if !authenticates(r, tok, access.BootstrapName) {
				t.Error("the first replica's admin token does not authenticate on the second")
			}
			if ids, err := r.ListIdentities(ctx); err != nil || len(ids) != 1 {
				t.Errorf("identities = %+v, %v; want the one admin", ids, err)
			}
		})
	}
}

// Two replicas bootstrapping at once, both having found the store empty at Open, create one
// admin: the second's commit finds the first's, and it removes the credential file it wrote.
func TestReplicasBootstrapTogether(t *testing.T) {
	c := etcdtest.Start(t, 1)
	first := openReplica(t, c, "/access", false, nil)
	late := openReplica(t, c, "/access", true, nil) // opened on the empty store, and never told
	tok, created, err := first.Bootstrap(filepath.Join(t.TempDir(), "admin.credential"))
	if err != nil || !created {
		t.Fatalf("first Bootstrap = %v, %v", created, err)
	}
	path := filepath.Join(t.TempDir(), "admin.credential")
	got, created, err := late.Bootstrap(path)
	if err != nil || created || got != "" {
		t.Fatalf("second Bootstrap = %v, %v; want nothing created", created, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the second replica left a credential file whose token was never committed (%v)", err)
	}
	if !authenticates(late, tok, access.BootstrapName) {
		t.Error("the second replica does not authenticate the first's admin")
	}
	if ids, err := late.ListIdentities(ctx); err != nil || len(ids) != 1 {
		t.Errorf("identities = %+v, %v; want the one admin", ids, err)
	}
}

// The last admin stays even when two replicas delete the last two admins at once: each counts
// the admins in its transaction, not in its view.
func TestReplicasKeepLastAdmin(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := openReplica(t, c, "/access", false, nil)
	if _, _, err := a.Bootstrap(filepath.Join(t.TempDir(), "admin.credential")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.CreateIdentity(ctx, "bob", []access.Role{access.RoleAdmin}, true, "", "second admin"); err != nil {
		t.Fatal(err)
	}
	b := openReplica(t, c, "/access", true, nil) // sees two admins, and is never told otherwise
	if err := a.DeleteIdentity(ctx, "bob", "", "left"); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteIdentity(ctx, access.BootstrapName, "", "replaced by bob"); fail.KindOf(err) != fail.Precondition {
		t.Fatalf("deleting the last admin from a replica that saw two = %v, want FailedPrecondition", err)
	}
	if ids, _ := a.ListIdentities(ctx); len(ids) != 1 {
		t.Errorf("identities = %+v, want the admin", ids)
	}
}
