package notify

import (
	"context"
	"fmt"
	"slices"
	"time"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

// contractWarnable are the states in which a partner holds, or may come to hold, access its
// contract end will take away.
var contractWarnable = []treatyv1.PartnerState{
	treatyv1.PartnerState_PARTNER_STATE_PROPOSED, treatyv1.PartnerState_PARTNER_STATE_APPROVED,
	treatyv1.PartnerState_PARTNER_STATE_ACTIVE, treatyv1.PartnerState_PARTNER_STATE_SUSPENDED,
}

// contractLoop checks contract ends now and every ContractCheckInterval until ctx ends.
func (n *Notifier) contractLoop(ctx context.Context) {
	for {
		if _, err := n.CheckContracts(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("notify: contract-end check failed; will retry", "err", err)
		}
		if !sleep(ctx, n.cfg.ContractCheckInterval) {
			return
		}
	}
}

// CheckContracts raises a contract.expiring notification for every partner whose contract ends
// within the warning window, once per partner per contract end (a renewed contract, with a new
// end, is warned about again). It returns how many it raised.
func (n *Notifier) CheckContracts(ctx context.Context) (int, error) {
	now := n.now()
	horizon := now.Add(n.cfg.ContractWarning)
	raised, token := 0, ""
	for {
		page, next, err := n.cfg.Directory.ListPartners(ctx, 1000, token)
		if err != nil {
			return raised, fmt.Errorf("notify: list partners: %w", err)
		}
		for _, p := range page {
			if !slices.Contains(contractWarnable, p.State) || !p.ContractEnd.After(now) || p.ContractEnd.After(horizon) {
				continue
			}
			added, err := n.warnContract(ctx, p, now)
			if err != nil {
				return raised, err
			}
			if added {
				raised++
			}
		}
		if next == "" {
			return raised, nil
		}
		token = next
	}
}

func (n *Notifier) warnContract(ctx context.Context, p registry.Partner, now time.Time) (bool, error) {
	end := p.ContractEnd.UTC()
	left := end.Sub(now)
	days := int(left.Hours() / 24)
	_, added, err := n.Enqueue(ctx, Event{
		Type: TypeContractExpiring, PartnerID: p.ID,
		Summary: fmt.Sprintf("The contract of partner %s ends %s (in %d days); renew it or plan the offboarding: every credential stops working then.",
			p.ID, end.Format(time.RFC3339), days),
		Details: map[string]string{
			"contract_end": end.Format(time.RFC3339),
			"days_left":    fmt.Sprint(days),
		},
		DedupeKey: "contract/" + p.ID + "/" + end.Format(time.RFC3339Nano),
	})
	return added, err
}
