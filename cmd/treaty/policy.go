package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

func (c *cli) policyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Put, inspect and test partners' Cedar policy sets"}
	cmd.AddCommand(c.policyPutCmd(), c.policyListCmd(), c.policyGetCmd(), c.policyTestCmd())
	return cmd
}

// readFile reads a named file, or stdin for "-".
func (c *cli) readFile(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(c.stdin)
	}
	raw, err := os.ReadFile(name)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return raw, nil
}

func (c *cli) policyPutCmd() *cobra.Command {
	var partner, reason string
	var shadow bool
	cmd := &cobra.Command{
		Use:   "put --partner ID FILE.cedar [--shadow]",
		Short: "Store a new version of a partner's policy set and deliver it to the decision points",
		Long: `Store a new version of a partner's Cedar policy set (FILE, or - for stdin) and deliver it
to the decision points. Policies only narrow what the partner's grants allow. With --shadow the
version is evaluated beside the live one and its disagreements are counted and logged, without
changing any answer; putting the same text live later promotes it and clears the shadow.`,
		Args: args(1, "--partner ID FILE.cedar"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := need(cmd, "partner"); err != nil {
				return err
			}
			if err := checkIDFlag("partner", partner); err != nil {
				return err
			}
			text, err := c.readFile(a[0])
			if err != nil {
				return err
			}
			mode := treatyv1.PolicyMode_POLICY_MODE_LIVE
			if shadow {
				mode = treatyv1.PolicyMode_POLICY_MODE_SHADOW
			}
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.PutPolicyResponse, error) {
				return rc.PutPolicy(ctx, &treatyv1.PutPolicyRequest{PartnerId: partner, Text: string(text), Mode: mode, Reason: reason, Actor: c.actor})
			}, func(r *treatyv1.PutPolicyResponse) view { return policyView(r.GetPolicy()) }, func(r *treatyv1.PutPolicyResponse) { c.showPolicy(r.GetPolicy(), r.GetSequence(), false) })
		},
	}
	cmd.Flags().StringVar(&partner, "partner", "", "the partner the policy set applies to")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit trail (optional)")
	cmd.Flags().BoolVar(&shadow, "shadow", false, "store it as the shadow set: evaluated and compared, never deciding")
	return recordFormats(cmd)
}

func (c *cli) showPolicy(p *treatyv1.Policy, seq uint64, withText bool) {
	fields(c.stdout, withSequence([]string{"id", p.GetId(), "partner", p.GetPartnerId(), "version", fmt.Sprint(p.GetVersion()),
		"mode", stateName(p.GetMode()), "current", fmt.Sprint(p.GetCurrent()), "created", ts(p.GetCreateTime()), "actor", p.GetActor()}, seq)...)
	if withText {
		fmt.Fprintf(c.stdout, "\n%s", p.GetText())
		if !strings.HasSuffix(p.GetText(), "\n") {
			fmt.Fprintln(c.stdout)
		}
	}
}

func (c *cli) policyListCmd() *cobra.Command {
	var partner string
	cmd := &cobra.Command{
		Use:   "list [--partner ID]",
		Short: "List policy versions, by partner and newest first",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if partner != "" {
				if err := checkIDFlag("partner", partner); err != nil {
					return err
				}
			}
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.ListPoliciesResponse, error) {
				all := &treatyv1.ListPoliciesResponse{}
				for token := ""; ; {
					resp, err := rc.ListPolicies(ctx, &treatyv1.ListPoliciesRequest{PartnerId: partner, PageSize: 1000, PageToken: token})
					if err != nil {
						return nil, err
					}
					all.Policies = append(all.Policies, resp.GetPolicies()...)
					if token = resp.GetNextPageToken(); token == "" {
						return all, nil
					}
				}
			}, func(all *treatyv1.ListPoliciesResponse) view { return policyView(all.GetPolicies()...) }, nil)
		},
	}
	cmd.Flags().StringVar(&partner, "partner", "", "only this partner's versions")
	return recordFormats(cmd)
}

func (c *cli) policyGetCmd() *cobra.Command {
	return recordFormats(&cobra.Command{
		Use:   "get ID",
		Short: "Show a policy version (PARTNER@VERSION) with its text, or a partner's live one (PARTNER)",
		Args:  args(1, "ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			partner, _, _ := strings.Cut(a[0], "@")
			if err := checkIDArg("partner", partner); err != nil {
				return err
			}
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.GetPolicyResponse, error) {
				return rc.GetPolicy(ctx, &treatyv1.GetPolicyRequest{Id: a[0]})
			}, func(r *treatyv1.GetPolicyResponse) view {
				v := policyView(r.GetPolicy())
				v.header = append(v.header, "text")
				v.rows[0] = append(v.rows[0], r.GetPolicy().GetText())
				return v
			}, func(r *treatyv1.GetPolicyResponse) { c.showPolicy(r.GetPolicy(), 0, true) })
		},
	})
}

// policyColumns are a policy version's columns; a table of them shows policyBrief.
var (
	policyColumns = []string{"id", "partner", "version", "mode", "current", "created", "actor"}
	policyBrief   = []string{"id", "partner", "mode", "current", "created", "actor"}
)

func policyView(ps ...*treatyv1.Policy) view {
	v := view{header: policyColumns, brief: policyBrief}
	for _, p := range ps {
		current := ""
		if p.GetCurrent() {
			current = "yes"
		}
		v.rows = append(v.rows, []string{p.GetId(), p.GetPartnerId(), fmt.Sprint(p.GetVersion()), stateName(p.GetMode()), current,
			instant(p.GetCreateTime()), p.GetActor()})
	}
	return v
}
