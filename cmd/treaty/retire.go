package main

import (
	"context"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// retireCmd builds `KIND retire ID --reason TEXT`: retirement is final, so the reason is required
// rather than defaulted.
func retireCmd[R proto.Message](c *cli, kind, short string, call func(context.Context, treatyv1.RegistryServiceClient, string, string) (R, error), toView func(R) view, show func(R)) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "retire ID --reason TEXT",
		Short: short,
		Args:  args(1, "ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkIDArg(kind, a[0]); err != nil {
				return err
			}
			if err := need(cmd, "reason"); err != nil {
				return err
			}
			if reason == "" {
				return usagef("--reason must not be empty")
			}
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (R, error) {
				return call(ctx, rc, a[0], reason)
			}, toView, show)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit trail and the feed")
	return recordFormats(cmd)
}

func (c *cli) integrationRetireCmd() *cobra.Command {
	return retireCmd(c, "integration", "Retire an integration for good, with its workloads: every credential under it is blocked permanently",
		func(ctx context.Context, rc treatyv1.RegistryServiceClient, id, reason string) (*treatyv1.RetireIntegrationResponse, error) {
			return rc.RetireIntegration(ctx, &treatyv1.RetireIntegrationRequest{Id: id, Reason: reason, Actor: c.actor})
		}, func(r *treatyv1.RetireIntegrationResponse) view { return integrationView(r.GetIntegration()) },
		func(r *treatyv1.RetireIntegrationResponse) { c.showIntegration(r.GetIntegration(), r.GetSequence()) })
}

func (c *cli) workloadRetireCmd() *cobra.Command {
	return retireCmd(c, "workload", "Retire a workload for good: every credential issued to it is blocked permanently",
		func(ctx context.Context, rc treatyv1.RegistryServiceClient, id, reason string) (*treatyv1.RetireWorkloadResponse, error) {
			return rc.RetireWorkload(ctx, &treatyv1.RetireWorkloadRequest{Id: id, Reason: reason, Actor: c.actor})
		}, func(r *treatyv1.RetireWorkloadResponse) view { return workloadView(r.GetWorkload()) },
		func(r *treatyv1.RetireWorkloadResponse) { c.showWorkload(r.GetWorkload(), r.GetSequence()) })
}
