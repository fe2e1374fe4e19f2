package registry_test

import (
	"context"
	"testing"

	"github.com/treaty-dev/treaty/fail"
)

// TestOffboardRefused: without a revoker and an inventory the workflow cannot revoke or confirm,
// so it is refused before anything changes, and the scheduler leaves ended partners alone; bad
// input is refused naming the field.
func TestOffboardRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustPartner(t, "acme")
	tests := []struct {
		name, id, reason string
		kind             fail.Kind
		field            string
	}{
		{"bad id", "Acme", "r", fail.Invalid, "id"},
		{"no reason", "acme", " ", fail.Invalid, "reason"},
		{"not configured", "acme", "contract over", fail.Precondition, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.reg.Offboard(ctx, tt.id, tt.reason, "bob", nil)
			checkErr(t, err, tt.kind, tt.field)
		})
	}
	if p, _ := e.reg.GetPartner(ctx, "acme"); p.State.String() != "PARTNER_STATE_ACTIVE" {
		t.Errorf("a refused offboarding changed the partner: %s", p.State)
	}
	if _, err := e.reg.GetOffboarding(ctx, "acme"); fail.KindOf(err) != fail.NotFound {
		t.Errorf("GetOffboarding after a refused offboarding: %v, want NotFound", err)
	}
	if n, err := e.reg.ResumeOffboardings(ctx); n != 0 || err != nil {
		t.Errorf("ResumeOffboardings without a revoker = %d, %v", n, err)
	}
}
