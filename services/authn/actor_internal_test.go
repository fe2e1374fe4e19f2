package authn

import (
	"testing"

	"github.com/treaty-dev/treaty/access"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// TestServicesRelayTheActor: a caller holding role service keeps the actor it declares (the
// actor of the request it serves, rewritten at its own edge); admin's implied roles do not count.
func TestServicesRelayTheActor(t *testing.T) {
	for _, tc := range []struct {
		caller   access.Caller
		declared string
		want     string
	}{
		{access.Caller{Name: access.InternalName, Roles: []access.Role{access.RoleService}}, "ops/alice", "ops/alice"},
		{access.Caller{Name: access.InternalName, Roles: []access.Role{access.RoleService}}, "", access.InternalName},
		{access.Caller{Name: "pdp-1", Roles: []access.Role{access.RolePDPClient, access.RoleService}}, "x", "x"},
		{access.Caller{Name: "root", Roles: []access.Role{access.RoleAdmin}}, "x", "root/x"},
	} {
		req := &treatyv1.RevokeRequest{Actor: tc.declared}
		setActor(req, tc.caller)
		if req.GetActor() != tc.want {
			t.Errorf("%s declaring %q: actor = %q, want %q", tc.caller.Name, tc.declared, req.GetActor(), tc.want)
		}
	}
	// Messages without an actor field, and an actor that is not a top-level string, are left alone.
	chk := &treatyv1.CheckRequest{}
	setActor(chk, access.Caller{Name: "x"})
	pub := &treatyv1.PublishRequest{}
	setActor(pub, access.Caller{Name: "x"})
	setActor("not a message", access.Caller{Name: "x"})
}
