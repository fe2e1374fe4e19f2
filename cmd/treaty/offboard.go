package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// offboardCmd is `treaty partner offboard ID --reason TEXT`: it runs (or resumes) the offboarding
// workflow and shows its progress, then the offboarding record.
func (c *cli) offboardCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "offboard ID --reason TEXT",
		Short: "Offboard a partner for good: block, revoke every credential, retire, confirm none is live, terminate",
		Long: `Offboard runs the offboarding workflow: the partner becomes OFFBOARDING and is blocked for good,
every live credential is revoked one by one, its integrations and workloads are retired, the
issuer's inventory confirms that no live credential is left, and the partner becomes TERMINATED.
Each step is recorded; if the command is interrupted, run it again to continue where it stopped.
'treaty partner offboarding ID' shows the record.`,
		Args: args(1, "ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkIDArg("partner", a[0]); err != nil {
				return err
			}
			if strings.TrimSpace(reason) == "" {
				return usagef("--reason must not be empty")
			}
			conn, err := c.conn("registry")
			if err != nil {
				return err
			}
			// No deadline: the workflow streams progress for as long as it takes; ^C stops
			// following it, and running the command again resumes it.
			stream, err := treatyv1.NewInventoryServiceClient(conn).RunOffboarding(cmd.Context(), &treatyv1.RunOffboardingRequest{
				PartnerId: a[0], Reason: reason, Actor: c.actor,
			})
			if err != nil {
				return err
			}
			var (
				bar  *progress
				step treatyv1.OffboardingStep
			)
			for {
				m, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					return errors.New("the server ended the offboarding without its record; run the command again")
				}
				if err != nil {
					if bar != nil {
						bar.stop()
					}
					return err
				}
				if p := m.GetProgress(); p != nil && c.output != "json" {
					if p.GetStep() != step || bar == nil {
						if bar != nil {
							bar.finish()
						}
						step = p.GetStep()
						bar = c.newProgress(int64(p.GetTotal()), stepVerb(step))
					}
					bar.set(int64(p.GetDone()), int64(max(p.GetTotal(), p.GetDone())))
				}
				if o := m.GetOffboarding(); o != nil {
					if bar != nil {
						bar.finish()
					}
					return c.renderOffboarding(o)
				}
			}
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit trail and the feed (required)")
	return recordFormats(cmd)
}

func stepVerb(s treatyv1.OffboardingStep) string {
	switch s {
	case treatyv1.OffboardingStep_OFFBOARDING_STEP_REVOKED:
		return "revoking credentials"
	case treatyv1.OffboardingStep_OFFBOARDING_STEP_RETIRED:
		return "retiring integrations"
	case treatyv1.OffboardingStep_OFFBOARDING_STEP_CONFIRMED:
		return "confirming none is live"
	}
	return strings.ToLower(strings.TrimPrefix(s.String(), "OFFBOARDING_STEP_"))
}

// offboardingCmd is `treaty partner offboarding ID`: the offboarding record.
func (c *cli) offboardingCmd() *cobra.Command {
	return recordFormats(&cobra.Command{
		Use:   "offboarding ID",
		Short: "Show a partner's offboarding record: what was revoked and retired, and when none was left live",
		Args:  args(1, "ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkIDArg("partner", a[0]); err != nil {
				return err
			}
			conn, err := c.conn("registry")
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			resp, err := treatyv1.NewInventoryServiceClient(conn).GetOffboarding(ctx, &treatyv1.GetOffboardingRequest{PartnerId: a[0]})
			if err != nil {
				return err
			}
			return c.renderOffboarding(resp.GetOffboarding())
		},
	})
}

// renderOffboarding prints an offboarding record: the message itself with -o json or yaml.
func (c *cli) renderOffboarding(o *treatyv1.Offboarding) error {
	v := view{header: []string{"partner", "step", "reason", "actor", "started", "revoked_credentials", "last_revocation_sequence", "revoked",
		"retired_integrations", "retired_workloads", "retired", "live_credentials", "confirmed_at_sequence", "confirmed", "terminated"}}
	v.rows = [][]string{{o.GetPartnerId(), strings.ToLower(strings.TrimPrefix(o.GetStep().String(), "OFFBOARDING_STEP_")), o.GetReason(), o.GetActor(),
		instant(o.GetStartTime()), fmt.Sprint(o.GetRevokedCredentials()), fmt.Sprint(o.GetLastRevocationSequence()), instant(o.GetRevokeTime()),
		fmt.Sprint(o.GetRetiredIntegrations()), fmt.Sprint(o.GetRetiredWorkloads()), instant(o.GetRetireTime()), fmt.Sprint(o.GetLiveCredentials()),
		fmt.Sprint(o.GetConfirmedAtSequence()), instant(o.GetConfirmTime()), instant(o.GetTerminateTime())}}
	return c.render(o, v, func() { c.showOffboarding(o) })
}

func (c *cli) showOffboarding(o *treatyv1.Offboarding) {
	fields(c.stdout,
		"partner", o.GetPartnerId(),
		"step", strings.ToLower(strings.TrimPrefix(o.GetStep().String(), "OFFBOARDING_STEP_")),
		"reason", o.GetReason(),
		"actor", o.GetActor(),
		"started", ts(o.GetStartTime()),
		"revoked credentials", fmt.Sprintf("%d (last at sequence %d, done %s)", o.GetRevokedCredentials(), o.GetLastRevocationSequence(), ts(o.GetRevokeTime())),
		"retired", fmt.Sprintf("%d integrations, %d workloads (done %s)", o.GetRetiredIntegrations(), o.GetRetiredWorkloads(), ts(o.GetRetireTime())),
		"confirmed", fmt.Sprintf("%s: %d live credentials, inventory at sequence %d", ts(o.GetConfirmTime()), o.GetLiveCredentials(), o.GetConfirmedAtSequence()),
		"terminated", ts(o.GetTerminateTime()),
	)
}
