package main

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// showBlastRadius prints a dry run's answer: resp with -o json or yaml, br as one row with -o csv,
// otherwise br readably.
func (c *cli) showBlastRadius(resp proto.Message, br *treatyv1.BlastRadius) error {
	v := view{header: []string{"partners", "integrations", "workloads", "live_credentials", "inventory_unavailable", "credential_ids"},
		rows: [][]string{{strings.Join(br.GetPartnerIds(), " "), strings.Join(br.GetIntegrationIds(), " "), strings.Join(br.GetWorkloadIds(), " "),
			fmt.Sprint(br.GetLiveCredentials()), fmt.Sprint(br.GetInventoryUnavailable()), strings.Join(br.GetCredentialIds(), " ")}}}
	return c.render(resp, v, func() { c.showBlastRadiusText(br) })
}

func (c *cli) showBlastRadiusText(br *treatyv1.BlastRadius) {
	list := func(ids []string) string {
		if len(ids) == 0 {
			return "none"
		}
		return fmt.Sprintf("%d: %s", len(ids), strings.Join(ids, ", "))
	}
	live := fmt.Sprint(br.GetLiveCredentials())
	if br.GetInventoryUnavailable() {
		live = "unknown (the issuer's inventory could not be asked)"
	}
	fields(c.stdout, "dry run", "nothing was revoked",
		"partners cut off", list(br.GetPartnerIds()),
		"integrations cut off", list(br.GetIntegrationIds()),
		"workloads cut off", list(br.GetWorkloadIds()),
		"live credentials killed", live)
	if ids := br.GetCredentialIds(); len(ids) > 0 {
		fmt.Fprintf(c.stdout, "credential ids (%d shown, soonest-expiring last):\n", len(ids))
		for _, id := range ids {
			fmt.Fprintln(c.stdout, "  "+id)
		}
	}
}
