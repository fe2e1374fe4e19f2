package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

func (c *cli) revokeCmd() *cobra.Command {
	cmd := c.killSwitchCmd("revoke", []string{"credential", "workload", "integration", "partner", "key"},
		"Revoke a credential or signing key, or block a workload, integration or partner (prints the feed sequence)")
	cmd.AddCommand(c.revokeAllCmd())
	return cmd
}

// revokeAllCmd is the break-glass revocation: every credential issued before a feed sequence.
func (c *cli) revokeAllCmd() *cobra.Command {
	var reason, requestID string
	var below uint64
	var head, dryRun bool
	cmd := &cobra.Command{
		Use:   "all (--below-sequence N | --head) --reason TEXT [--request-id ID] [--dry-run]",
		Short: "Break glass: revoke every credential issued before a feed sequence, for an issuer compromise (prints the feed sequence)",
		Long: "Revoke every credential whose tsq is below a feed sequence, whatever it is for. --head revokes every\n" +
			"credential issued so far; credentials issued afterwards are valid, so issuance goes on. The watermark\n" +
			"only rises: a lower one than in force changes nothing.",
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !dryRun {
				if err := c.onlyOutputs(cmd, "it prints a feed sequence; a dry run takes yaml and csv too", outputTable, outputJSON); err != nil {
					return err
				}
			}
			if err := need(cmd, "reason"); err != nil && !dryRun {
				return err
			}
			switch set := cmd.Flags().Changed("below-sequence"); {
			case set == head:
				return usagef("revoke all: give exactly one of --below-sequence N and --head")
			case set && below == 0:
				return usagef("revoke all: --below-sequence must be positive; use --head for every credential issued so far")
			}
			conn, err := c.conn("revoker")
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			resp, err := treatyv1.NewRevocationServiceClient(conn).RevokeAll(ctx, &treatyv1.RevokeAllRequest{
				BelowSequence: below, Reason: reason, Actor: c.actor, RequestId: requestID, DryRun: dryRun,
			})
			if err != nil {
				return err
			}
			if dryRun {
				return c.showBlastRadius(resp, resp.GetBlastRadius())
			}
			if c.output == "json" {
				return c.printJSON(map[string]any{
					"sequence": resp.GetSequence(), "below_sequence": resp.GetBelowSequence(), "already_applied": resp.GetAlreadyApplied(),
				})
			}
			_, err = fmt.Fprintln(c.stdout, resp.GetSequence())
			return err
		},
	}
	cmd.Flags().Uint64Var(&below, "below-sequence", 0, "revoke every credential with a tsq below this feed sequence")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show how many live credentials it would kill without doing it; --reason is then optional")
	cmd.Flags().BoolVar(&head, "head", false, "revoke every credential issued so far (the head plus one)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded in the feed and the audit trail")
	cmd.Flags().StringVar(&requestID, "request-id", "", "idempotency key: a retry with the same id returns the original sequence")
	return recordFormats(cmd)
}

func (c *cli) restoreCmd() *cobra.Command {
	return c.killSwitchCmd("restore", []string{"workload", "integration", "partner"},
		"Lift a block; credentials issued before the restore stay dead (prints the feed sequence)")
}

func (c *cli) killSwitchCmd(verb string, kinds []string, short string) *cobra.Command {
	var reason, requestID string
	var dryRun bool
	cmd := &cobra.Command{
		Use:               verb + " " + strings.Join(kinds, "|") + " ID --reason TEXT [--request-id ID]",
		Short:             short,
		Args:              args(2, strings.Join(kinds, "|")+" ID"),
		ValidArgsFunction: c.killSwitchArgs(kinds),
		RunE: func(cmd *cobra.Command, a []string) error {
			kind, ok := feed.ParseKind(a[0])
			if !ok || !contains(kinds, a[0]) {
				return usagef("cannot %s %q: choose one of %s", verb, a[0], strings.Join(kinds, ", "))
			}
			if !dryRun && verb == "revoke" {
				if err := c.onlyOutputs(cmd, "it prints a feed sequence; --dry-run takes yaml and csv too", outputTable, outputJSON); err != nil {
					return err
				}
			}
			if err := need(cmd, "reason"); err != nil && !dryRun {
				return err
			}
			if err := feed.CheckTarget("ID", kind, a[1]); err != nil {
				return usagef("%v", err)
			}
			conn, err := c.conn("revoker")
			if err != nil {
				return err
			}
			client := treatyv1.NewRevocationServiceClient(conn)
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			if dryRun {
				resp, err := client.Revoke(ctx, &treatyv1.RevokeRequest{TargetKind: kind, TargetId: a[1], Reason: reason, Actor: c.actor, DryRun: true})
				if err != nil {
					return err
				}
				return c.showBlastRadius(resp, resp.GetBlastRadius())
			}
			var seq uint64
			var already bool
			if verb == "revoke" {
				resp, err := client.Revoke(ctx, &treatyv1.RevokeRequest{TargetKind: kind, TargetId: a[1], Reason: reason, Actor: c.actor, RequestId: requestID})
				if err != nil {
					return err
				}
				seq, already = resp.GetSequence(), resp.GetAlreadyApplied()
			} else {
				resp, err := client.Restore(ctx, &treatyv1.RestoreRequest{TargetKind: kind, TargetId: a[1], Reason: reason, Actor: c.actor, RequestId: requestID})
				if err != nil {
					return err
				}
				seq, already = resp.GetSequence(), resp.GetAlreadyApplied()
			}
			if c.output == "json" {
				return c.printJSON(map[string]any{"sequence": seq, "already_applied": already})
			}
			_, err = fmt.Fprintln(c.stdout, seq)
			return err
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded in the feed and the audit trail")
	cmd.Flags().StringVar(&requestID, "request-id", "", "idempotency key: a retry with the same id returns the original sequence")
	if verb == "revoke" {
		cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what it would hit (live credentials, integrations, workloads) without doing it; --reason is then optional")
		recordFormats(cmd) // with --dry-run; without it, it prints a feed sequence (table or json)
	}
	return cmd
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
