package main

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// showBlastRadius prints a dry run's answer: resp as JSON with -o json, otherwise br readably.
func (c *cli) showBlastRadius(resp proto.Message, br *treatyv1.BlastRadius) error {
	if c.output == "json" {
		return c.printProto(resp)
	}
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
	return nil
}
