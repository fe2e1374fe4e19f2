package registry_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/registry"
)

// TestEveryWriteSaysWhy drives every kind of registry write, in order, through one registry on a
// real bbolt file, and checks the audit records each leaves: who, what, on what, why, and the
// state before where something existed before. A reason given is recorded as given; without one
// the record says what happened.
func TestEveryWriteSaysWhy(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var keyID, secretID string
	tests := []struct {
		name   string
		write  func() error
		action string // the write's own record among those it leaves
		reason string // the reason that record must carry; "" means any non-empty one
		before bool   // whether the record must carry the state before
	}{
		{"partner create (proposed)", func() error {
			_, _, err := e.reg.CreatePartner(ctx, partner("acme"), "alice")
			return err
		}, "partner.create", "partner created", false},
		{"partner approve", func() error {
			_, _, err := e.reg.ApprovePartner(ctx, "acme", "carol", "alice")
			return err
		}, "partner.approve", "approved by carol", true},
		{"partner activate", func() error {
			_, _, err := e.reg.ActivatePartner(ctx, "acme", "alice")
			return err
		}, "partner.activate", "partner activated", true},
		{"partner update with a reason", func() error {
			p, err := e.reg.GetPartner(ctx, "acme")
			if err != nil {
				return err
			}
			_, _, err = e.reg.UpdatePartner(ctx, registry.Partner{ID: "acme", Etag: p.Etag, OwnerTeam: "vendor-risk"},
				[]string{"owner_team"}, "team reorganised (TICKET-9)", "bob")
			return err
		}, "partner.update", "team reorganised (TICKET-9)", true},
		{"partner update without a reason", func() error {
			p, err := e.reg.GetPartner(ctx, "acme")
			if err != nil {
				return err
			}
			_, _, err = e.reg.UpdatePartner(ctx, registry.Partner{ID: "acme", Etag: p.Etag, SecurityContact: "sec@acme.example"},
				[]string{"security_contact"}, "", "bob")
			return err
		}, "partner.update", "updated security_contact", true},
		{"partner create in one step with a reason", func() error {
			_, _, err := e.reg.CreatePartner(ctx, partner("globex"), "alice",
				registry.CreateOptions{Activate: true, ApprovedBy: "carol", Reason: "new payments vendor"})
			return err
		}, "partner.create", "new payments vendor; created, approved by carol and activated in one step", false},
		{"integration create (requested)", func() error {
			_, _, err := e.reg.CreateIntegration(ctx, integration("orders", "acme"), "alice")
			return err
		}, "integration.create", "integration created", false},
		{"integration approve", func() error {
			_, _, err := e.reg.ApproveIntegration(ctx, "orders", "carol", "CHG-1", "alice")
			return err
		}, "integration.approve", "approved by carol", true},
		{"integration activate", func() error {
			_, _, err := e.reg.ActivateIntegration(ctx, "orders", "alice")
			return err
		}, "integration.activate", "integration activated", true},
		{"integration update", func() error {
			i, err := e.reg.GetIntegration(ctx, "orders")
			if err != nil {
				return err
			}
			_, _, err = e.reg.UpdateIntegration(ctx, registry.Integration{ID: "orders", Etag: i.Etag, AllowedScopes: []string{"orders:read"}},
				[]string{"allowed_scopes"}, "least privilege", "bob")
			return err
		}, "integration.update", "least privilege", true},
		{"integration recertify", func() error {
			_, err := e.reg.RecertifyIntegration(ctx, "orders", "", "rita")
			return err
		}, "integration.recertify", "integration recertified", true},
		{"integration suspend", func() error {
			_, _, err := e.reg.SuspendIntegration(ctx, "orders", "incident 12", "bob")
			return err
		}, "integration.suspend", "incident 12", true},
		{"integration reactivate", func() error {
			_, _, err := e.reg.ReactivateIntegration(ctx, "orders", "incident 12 closed", "bob")
			return err
		}, "integration.reactivate", "incident 12 closed", true},
		{"workload create with a reason", func() error {
			_, _, err := e.reg.CreateWorkload(ctx, "bot", "orders", publicKeyPEM(t), "nightly sync job", "alice")
			return err
		}, "workload.create", "nightly sync job", false},
		{"workload create without a reason", func() error {
			_, _, err := e.reg.CreateWorkload(ctx, "bot2", "orders", publicKeyPEM(t), "", "alice")
			return err
		}, "workload.create", "workload created", false},
		{"workload key add", func() error {
			w, _, err := e.reg.AddWorkloadKey(ctx, "bot", publicKeyPEM(t), "", "alice")
			if err == nil {
				keyID = w.Keys[0].KeyID // the old key, removed next
			}
			return err
		}, "workload.key.add", "", true},
		{"workload key remove", func() error {
			_, _, err := e.reg.RemoveWorkloadKey(ctx, "bot", keyID, "rotation complete", "alice")
			return err
		}, "workload.key.remove", "rotation complete", true},
		{"client secret create", func() error {
			cs, _, err := e.reg.CreateClientSecret(ctx, "bot", time.Hour, "", "alice")
			secretID = cs.ID
			return err
		}, "workload.client_secret.create", "client secret created", false},
		{"client secret revoke", func() error {
			_, err := e.reg.RevokeClientSecret(ctx, "bot", secretID, "pasted in a chat", "alice")
			return err
		}, "workload.client_secret.revoke", "pasted in a chat", true},
		{"policy put", func() error {
			_, _, err := e.reg.PutPolicy(ctx, "acme", noWrites, live, "", "alice")
			return err
		}, "policy.put", "policy acme@1 put", false},
		{"policy put again with a reason", func() error {
			_, _, err := e.reg.PutPolicy(ctx, "acme", noReads, live, "reads moved to the new API", "alice")
			return err
		}, "policy.put", "reads moved to the new API", true},
		{"workload retire", func() error {
			_, _, err := e.reg.RetireWorkload(ctx, "bot2", "job decommissioned", "alice")
			return err
		}, "workload.retire", "job decommissioned", true},
		{"partner suspend", func() error {
			_, _, err := e.reg.SuspendPartner(ctx, "globex", "breach notice", "bob")
			return err
		}, "partner.suspend", "breach notice", true},
		{"partner reactivate", func() error {
			_, _, err := e.reg.ReactivatePartner(ctx, "globex", "breach contained", "bob")
			return err
		}, "partner.reactivate", "breach contained", true},
		{"inventory import", func() error {
			_, err := e.reg.Import(ctx, registry.Import{Partners: []registry.Partner{partner("initech")}}, "importer", false)
			return err
		}, "inventory.import", "inventory imported", false},
		{"integration retire", func() error {
			_, _, err := e.reg.RetireIntegration(ctx, "orders", "integration replaced", "alice")
			return err
		}, "integration.retire", "integration replaced", true},
		{"partner offboard", func() error {
			_, _, err := e.reg.OffboardPartner(ctx, "globex", "contract not renewed", "carol")
			return err
		}, "partner.offboard", "contract not renewed", true},
	}
	seen := uint64(0)
	for _, tt := range tests {
		if err := tt.write(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		recs, err := e.reg.ListAudit(ctx, seen, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			t.Fatalf("%s: no audit record", tt.name)
		}
		seen = recs[len(recs)-1].Sequence
		found := false
		for _, r := range recs {
			if r.Actor == "" || r.Action == "" || r.Target == "" || strings.TrimSpace(r.Reason) == "" || r.Time.IsZero() {
				t.Errorf("%s: record %d lacks who, what, on what, when or why: %+v", tt.name, r.Sequence, r)
			}
			if r.Action != tt.action {
				continue
			}
			found = true
			if tt.reason != "" && r.Reason != tt.reason {
				t.Errorf("%s: reason %q, want %q", tt.name, r.Reason, tt.reason)
			}
			if tt.before && len(r.Before) == 0 {
				t.Errorf("%s: record %d has no before state", tt.name, r.Sequence)
			}
			if len(r.After) == 0 {
				t.Errorf("%s: record %d has no after state", tt.name, r.Sequence)
			}
		}
		if !found {
			t.Errorf("%s: no %s record among %+v", tt.name, tt.action, recs)
		}
	}
	if v, err := e.reg.VerifyAudit(ctx, registry.AuditAnchor{}); err != nil || !v.Intact() || v.HeadSequence != seen {
		t.Fatalf("audit chain = %+v, %v; want intact up to %d", v, err, seen)
	}
}

// TestReasonRules: removing a key and revoking a client secret need a reason; elsewhere a reason
// is optional but checked by the same rules when given.
func TestReasonRules(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustPartner(t, "acme")
	e.mustIntegration(t, "orders", "acme")
	w := e.mustWorkload(t, "bot", "orders")
	cs, _, err := e.reg.CreateClientSecret(ctx, "bot", time.Hour, "", "alice")
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 1025)
	bad := "line\x00break"
	tests := []struct {
		name  string
		write func() error
	}{
		{"remove key without a reason", func() error {
			_, _, err := e.reg.RemoveWorkloadKey(ctx, "bot", w.Keys[0].KeyID, "", "alice")
			return err
		}},
		{"remove key with a blank reason", func() error {
			_, _, err := e.reg.RemoveWorkloadKey(ctx, "bot", w.Keys[0].KeyID, "  ", "alice")
			return err
		}},
		{"revoke secret without a reason", func() error {
			_, err := e.reg.RevokeClientSecret(ctx, "bot", cs.ID, "", "alice")
			return err
		}},
		{"revoke secret with a too long reason", func() error {
			_, err := e.reg.RevokeClientSecret(ctx, "bot", cs.ID, long, "alice")
			return err
		}},
		{"workload create with a too long reason", func() error {
			_, _, err := e.reg.CreateWorkload(ctx, "bot2", "orders", publicKeyPEM(t), long, "alice")
			return err
		}},
		{"add key with a control character", func() error {
			_, _, err := e.reg.AddWorkloadKey(ctx, "bot", publicKeyPEM(t), bad, "alice")
			return err
		}},
		{"secret create with a too long reason", func() error {
			_, _, err := e.reg.CreateClientSecret(ctx, "bot", time.Hour, "", "alice")
			if err != nil {
				return err
			}
			_, _, err = e.reg.CreateClientSecret(ctx, "bot", time.Hour, long, "alice")
			return err
		}},
		{"policy put with a control character", func() error {
			_, _, err := e.reg.PutPolicy(ctx, "acme", noWrites, live, bad, "alice")
			return err
		}},
		{"partner create with a too long reason", func() error {
			_, _, err := e.reg.CreatePartner(ctx, partner("globex"), "alice", registry.CreateOptions{Reason: long})
			return err
		}},
		{"integration update with a control character", func() error {
			i, err := e.reg.GetIntegration(ctx, "orders")
			if err != nil {
				return err
			}
			_, _, err = e.reg.UpdateIntegration(ctx, registry.Integration{ID: "orders", Etag: i.Etag, Owner: "x"}, []string{"owner"}, bad, "alice")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tt.write(), fail.Invalid, "reason")
		})
	}
	// Nothing was written: the key and the secret are still there.
	got, err := e.reg.GetWorkload(ctx, "bot")
	if err != nil || len(got.Keys) != 1 {
		t.Fatalf("workload after refused writes = %+v, %v", got, err)
	}
}
