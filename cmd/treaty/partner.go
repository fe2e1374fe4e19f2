package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

func (c *cli) partnerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "partner", Short: "Register, inspect, suspend and offboard partners"}
	cmd.AddCommand(c.partnerCreateCmd(), c.partnerGetCmd(), c.partnerListCmd(),
		c.partnerEndCmd("suspend", "Suspend a partner: every credential under it is blocked"),
		c.partnerEndCmd("offboard", "Offboard a partner for good: every credential under it is blocked permanently"))
	return cmd
}

func (c *cli) registry() (treatyv1.RegistryServiceClient, error) {
	conn, err := c.conn("registry")
	if err != nil {
		return nil, err
	}
	return treatyv1.NewRegistryServiceClient(conn), nil
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

func checkIDFlag(flag, id string) error {
	if !fail.ValidID(id) {
		return usagef("--%s %q is not a valid id: use 1-63 lower-case letters, digits and dashes, starting with a letter or digit", flag, id)
	}
	return nil
}

func checkIDArg(what, id string) error {
	if !fail.ValidID(id) {
		return usagef("%s id %q is not valid: use 1-63 lower-case letters, digits and dashes, starting with a letter or digit", what, id)
	}
	return nil
}

func (c *cli) partnerCreateCmd() *cobra.Command {
	var id, name, owner, end string
	cmd := &cobra.Command{
		Use:   "create --id ID --name NAME --owner TEAM --contract-end YYYY-MM-DD",
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
			client, err := c.registry()
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			resp, err := client.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Actor: c.actor, Partner: &treatyv1.Partner{
				Id: id, DisplayName: name, OwnerTeam: owner, ContractEndTime: timestamppb.New(ends),
			}})
			if err != nil {
				return err
			}
			return c.showPartner(resp.GetPartner(), resp.GetSequence(), resp)
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "partner id (lower-case letters, digits, dashes)")
	f.StringVar(&name, "name", "", "display name")
	f.StringVar(&owner, "owner", "", "internal team accountable for the partner")
	f.StringVar(&end, "contract-end", "", "last day of the contract, YYYY-MM-DD (UTC)")
	return cmd
}

func (c *cli) partnerGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a partner",
		Args:  args(1, "ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkIDArg("partner", a[0]); err != nil {
				return err
			}
			client, err := c.registry()
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			resp, err := client.GetPartner(ctx, &treatyv1.GetPartnerRequest{Id: a[0]})
			if err != nil {
				return err
			}
			return c.showPartner(resp.GetPartner(), 0, resp)
		},
	}
}

func (c *cli) showPartner(p *treatyv1.Partner, seq uint64, resp proto.Message) error {
	if c.output == "json" {
		return c.printProto(resp)
	}
	kv := []string{"id", p.GetId(), "name", p.GetDisplayName(), "owner", p.GetOwnerTeam(), "state", stateName(p.GetState()),
		"contract end", fmt.Sprintf("%s (access ends %s)", contractEndDate(p.GetContractEndTime()), ts(p.GetContractEndTime())),
		"created", ts(p.GetCreateTime()), "updated", ts(p.GetUpdateTime())}
	if seq != 0 {
		kv = append(kv, "sequence", fmt.Sprint(seq))
	}
	fields(c.stdout, kv...)
	return nil
}

func (c *cli) partnerListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List partners",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := c.registry()
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			all := &treatyv1.ListPartnersResponse{}
			for token := ""; ; {
				resp, err := client.ListPartners(ctx, &treatyv1.ListPartnersRequest{PageSize: 1000, PageToken: token})
				if err != nil {
					return err
				}
				all.Partners = append(all.Partners, resp.GetPartners()...)
				if token = resp.GetNextPageToken(); token == "" {
					break
				}
			}
			if c.output == "json" {
				return c.printProto(all)
			}
			var rows [][]string
			for _, p := range all.GetPartners() {
				rows = append(rows, []string{p.GetId(), p.GetDisplayName(), p.GetOwnerTeam(), stateName(p.GetState()), contractEndDate(p.GetContractEndTime())})
			}
			table(c.stdout, []string{"ID", "NAME", "OWNER", "STATE", "CONTRACT END"}, rows)
			return nil
		},
	}
}

func (c *cli) partnerEndCmd(verb, short string) *cobra.Command {
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
			client, err := c.registry()
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			var p *treatyv1.Partner
			var seq uint64
			var resp proto.Message
			if verb == "suspend" {
				r, err := client.SuspendPartner(ctx, &treatyv1.SuspendPartnerRequest{Id: a[0], Reason: reason, Actor: c.actor})
				if err != nil {
					return err
				}
				p, seq, resp = r.GetPartner(), r.GetSequence(), r
			} else {
				r, err := client.OffboardPartner(ctx, &treatyv1.OffboardPartnerRequest{Id: a[0], Reason: reason, Actor: c.actor})
				if err != nil {
					return err
				}
				p, seq, resp = r.GetPartner(), r.GetSequence(), r
			}
			return c.showPartner(p, seq, resp)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "partner "+verb+" with the treaty CLI", "why, for the audit trail")
	return cmd
}
