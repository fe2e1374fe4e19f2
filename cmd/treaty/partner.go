package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

func (c *cli) partnerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "partner", Short: "Register, inspect, suspend and offboard partners"}
	cmd.AddCommand(c.partnerCreateCmd(),
		registryGetCmd(c, "partner", func(ctx context.Context, rc treatyv1.RegistryServiceClient, id string) (*treatyv1.GetPartnerResponse, error) {
			return rc.GetPartner(ctx, &treatyv1.GetPartnerRequest{Id: id})
		}, func(r *treatyv1.GetPartnerResponse) { c.showPartner(r.GetPartner(), 0) }),
		c.partnerListCmd(), c.partnerSuspendCmd(), c.partnerOffboardCmd(), c.offboardingCmd())
	return cmd
}

// parseContractEnd turns the last day of a contract into the instant access ends: the start of
// the next day, UTC.
func parseContractEnd(day string) (time.Time, error) {
	d, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return time.Time{}, usagef("--contract-end %q is not a date; use YYYY-MM-DD", day)
	}
	return d.AddDate(0, 0, 1), nil
}

func (c *cli) partnerCreateCmd() *cobra.Command {
	var id, name, owner, end, tier string
	cmd := &cobra.Command{
		Use:   "create --id ID --name NAME --owner TEAM --contract-end YYYY-MM-DD [--risk-tier medium]",
		Short: "Register a partner (access ends at the end of the contract's last day, UTC)",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(cmd, "id", "name", "owner", "contract-end"); err != nil {
				return err
			}
			if err := checkIDFlag("id", id); err != nil {
				return err
			}
			ends, err := parseContractEnd(end)
			if err != nil {
				return err
			}
			riskTier, ok := registry.ParseTier(tier)
			if !ok {
				return usagef("--risk-tier must be low, medium, high or critical, not %q", tier)
			}
			return registryCall(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.CreatePartnerResponse, error) {
				return rc.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Actor: c.actor, Partner: &treatyv1.Partner{
					Id: id, DisplayName: name, OwnerTeam: owner, ContractEndTime: timestamppb.New(ends), RiskTier: riskTier,
				}})
			}, func(r *treatyv1.CreatePartnerResponse) { c.showPartner(r.GetPartner(), r.GetSequence()) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "partner id (lower-case letters, digits, dashes)")
	f.StringVar(&name, "name", "", "display name")
	f.StringVar(&owner, "owner", "", "internal team accountable for the partner")
	f.StringVar(&end, "contract-end", "", "last day of the contract, YYYY-MM-DD (UTC)")
	f.StringVar(&tier, "risk-tier", "medium", "risk tier: low, medium, high or critical (high and critical forbid client secrets)")
	return cmd
}

func (c *cli) showPartner(p *treatyv1.Partner, seq uint64) {
	fields(c.stdout, withSequence([]string{"id", p.GetId(), "name", p.GetDisplayName(), "owner", p.GetOwnerTeam(),
		"state", stateName(p.GetState()), "risk tier", registry.TierName(p.GetRiskTier()),
		"contract end", fmt.Sprintf("%s (access ends %s)", contractEndDate(p.GetContractEndTime()), ts(p.GetContractEndTime())),
		"created", ts(p.GetCreateTime()), "updated", ts(p.GetUpdateTime())}, seq)...)
}

func (c *cli) partnerListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List partners",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return registryCall(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.ListPartnersResponse, error) {
				all := &treatyv1.ListPartnersResponse{}
				for token := ""; ; {
					resp, err := rc.ListPartners(ctx, &treatyv1.ListPartnersRequest{PageSize: 1000, PageToken: token})
					if err != nil {
						return nil, err
					}
					all.Partners = append(all.Partners, resp.GetPartners()...)
					if token = resp.GetNextPageToken(); token == "" {
						return all, nil
					}
				}
			}, func(all *treatyv1.ListPartnersResponse) {
				var rows [][]string
				for _, p := range all.GetPartners() {
					rows = append(rows, []string{p.GetId(), p.GetDisplayName(), p.GetOwnerTeam(), stateName(p.GetState()), contractEndDate(p.GetContractEndTime())})
				}
				table(c.stdout, []string{"ID", "NAME", "OWNER", "STATE", "CONTRACT END"}, rows)
			})
		},
	}
}

// partnerWrite is the response of a registry write on a partner.
type partnerWrite interface {
	proto.Message
	GetPartner() *treatyv1.Partner
	GetSequence() uint64
}

// partnerTransitionCmd builds `partner VERB ID [--reason TEXT]` for a transition that blocks the
// partner's credentials.
func partnerTransitionCmd[R partnerWrite](c *cli, verb, short string, call func(context.Context, treatyv1.RegistryServiceClient, string, string) (R, error)) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   verb + " ID [--reason TEXT]",
		Short: short,
		Args:  args(1, "ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkIDArg("partner", a[0]); err != nil {
				return err
			}
			if reason == "" {
				return usagef("--reason must not be empty")
			}
			return registryCall(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (R, error) {
				return call(ctx, rc, a[0], reason)
			}, func(r R) { c.showPartner(r.GetPartner(), r.GetSequence()) })
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "partner "+verb+" with the treaty CLI", "why, for the audit trail")
	return cmd
}

func (c *cli) partnerSuspendCmd() *cobra.Command {
	return partnerTransitionCmd(c, "suspend", "Suspend a partner: every credential under it is blocked",
		func(ctx context.Context, rc treatyv1.RegistryServiceClient, id, reason string) (*treatyv1.SuspendPartnerResponse, error) {
			return rc.SuspendPartner(ctx, &treatyv1.SuspendPartnerRequest{Id: id, Reason: reason, Actor: c.actor})
		})
}

// partnerOffboardCmd runs the offboarding workflow (offboard.go).
func (c *cli) partnerOffboardCmd() *cobra.Command { return c.offboardCmd() }
