package inventorysvc

import (
	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

func validateRunOffboarding(req *treatyv1.RunOffboardingRequest) error {
	if err := fail.CheckID("partner_id", req.GetPartnerId()); err != nil {
		return err
	}
	if err := registry.CheckReason("reason", req.GetReason()); err != nil {
		return err
	}
	return registry.CheckActor("actor", req.GetActor())
}

func validateGetOffboarding(req *treatyv1.GetOffboardingRequest) error {
	return fail.CheckID("partner_id", req.GetPartnerId())
}

func validateImportSize(req *importRequest) error {
	if n := len(req.partners) + len(req.integrations) + len(req.workloads); n > registry.MaxImportItems {
		return fail.Invalidf("partners", "the import holds more than %d items; split it", registry.MaxImportItems)
	}
	return nil
}

func validateImport(req *importRequest) error {
	return registry.CheckActor("actor", req.actor)
}
