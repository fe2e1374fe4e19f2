package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

func (c *cli) revokeCmd() *cobra.Command {
	return c.killSwitchCmd("revoke", []string{"credential", "workload", "integration", "partner", "key"},
		"Revoke a credential or signing key, or block a workload, integration or partner (prints the feed sequence)")
}

func (c *cli) restoreCmd() *cobra.Command {
	return c.killSwitchCmd("restore", []string{"workload", "integration", "partner"},
		"Lift a block; credentials issued before the restore stay dead (prints the feed sequence)")
}

func (c *cli) killSwitchCmd(verb string, kinds []string, short string) *cobra.Command {
	var reason, requestID string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   verb + " " + strings.Join(kinds, "|") + " ID --reason TEXT [--request-id ID]",
		Short: short,
		Args:  args(2, strings.Join(kinds, "|")+" ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			kind, ok := feed.ParseKind(a[0])
			if !ok || !contains(kinds, a[0]) {
				return usagef("cannot %s %q: choose one of %s", verb, a[0], strings.Join(kinds, ", "))
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
