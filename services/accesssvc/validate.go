package accesssvc

import (
	"github.com/treaty-dev/treaty/access"
	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

func validateCreate(req *treatyv1.CreateIdentityRequest) ([]access.Role, error) {
	if err := access.CheckName("name", req.GetName()); err != nil {
		return nil, err
	}
	if len(req.GetRoles()) == 0 {
		return nil, fail.Invalidf("roles", "roles is required: name at least one of admin, operator, auditor, pdp-client, subscriber, service")
	}
	roles := make([]access.Role, len(req.GetRoles()))
	for i, name := range req.GetRoles() {
		r, err := access.ParseRole(name)
		if err != nil {
			return nil, err
		}
		roles[i] = r
	}
	if err := registry.CheckReason("reason", req.GetReason()); err != nil {
		return nil, err
	}
	return roles, registry.CheckActor("actor", req.GetActor())
}

func validateDelete(req *treatyv1.DeleteIdentityRequest) error {
	if err := access.CheckName("name", req.GetName()); err != nil {
		return err
	}
	if err := registry.CheckReason("reason", req.GetReason()); err != nil {
		return err
	}
	return registry.CheckActor("actor", req.GetActor())
}

func validateRotate(req *treatyv1.RotateTokenRequest) error {
	if err := access.CheckName("name", req.GetName()); err != nil {
		return err
	}
	if err := registry.CheckReason("reason", req.GetReason()); err != nil {
		return err
	}
	return registry.CheckActor("actor", req.GetActor())
}

func validateRefusals(req *treatyv1.ListRefusalsRequest) error {
	if n := req.GetPageSize(); n < 0 || n > access.MaxRefusalPage {
		return fail.Invalidf("page_size", "page_size must be 0-%d (0 means 100)", access.MaxRefusalPage)
	}
	return nil
}
