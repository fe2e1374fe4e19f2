package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// workloadSecretCmd is `treaty workload secret ...`: client secrets for partners that cannot sign
// client assertions.
func (c *cli) workloadSecretCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "secret", Short: "Create, list and revoke a workload's client secrets (weaker than keys: prefer private_key_jwt)"}
	var ttl, createReason, revokeReason string
	create := &cobra.Command{
		Use:   "create ID [--ttl 30d]",
		Short: "Generate a client secret; it is printed once and never shown again",
		Args:  args(1, "ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkIDArg("workload", a[0]); err != nil {
				return err
			}
			d, err := parseDays(ttl)
			if err != nil {
				return usagef("--ttl %q: %v", ttl, err)
			}
			req := &treatyv1.CreateClientSecretRequest{WorkloadId: a[0], Reason: createReason, Actor: c.actor}
			if d != 0 {
				req.Ttl = durationpb.New(d)
			}
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.CreateClientSecretResponse, error) {
				return rc.CreateClientSecret(ctx, req)
			}, func(r *treatyv1.CreateClientSecretResponse) view {
				v := secretView(r.GetClientSecret())
				v.header = append(v.header, "secret")
				v.rows[0] = append(v.rows[0], r.GetSecret())
				return v
			}, func(r *treatyv1.CreateClientSecretResponse) {
				c.showSecret(r.GetClientSecret())
				fields(c.stdout, "secret", r.GetSecret())
				fmt.Fprintln(c.stderr, "treaty: store this secret now: it is not stored by Treaty and is not shown again")
			})
		},
	}
	create.Flags().StringVar(&createReason, "reason", "", "why, for the audit trail (optional)")
	create.Flags().StringVar(&ttl, "ttl", "", "how long the secret authenticates, e.g. 30d or 720h (default 30d, at most 90d)")
	list := &cobra.Command{
		Use:   "list ID",
		Short: "List a workload's client secrets (metadata only)",
		Args:  args(1, "ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkIDArg("workload", a[0]); err != nil {
				return err
			}
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.ListClientSecretsResponse, error) {
				return rc.ListClientSecrets(ctx, &treatyv1.ListClientSecretsRequest{WorkloadId: a[0]})
			}, func(r *treatyv1.ListClientSecretsResponse) view { return secretView(r.GetClientSecrets()...) }, nil)
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID SECRET_ID --reason TEXT",
		Short: "Revoke a client secret at once (tokens already issued with it live until they expire)",
		Args:  args(2, "ID SECRET_ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkIDArg("workload", a[0]); err != nil {
				return err
			}
			if err := checkIDArg("secret", a[1]); err != nil {
				return err
			}
			if err := need(cmd, "reason"); err != nil {
				return err
			}
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.RevokeClientSecretResponse, error) {
				return rc.RevokeClientSecret(ctx, &treatyv1.RevokeClientSecretRequest{WorkloadId: a[0], SecretId: a[1], Reason: revokeReason, Actor: c.actor})
			}, func(r *treatyv1.RevokeClientSecretResponse) view { return secretView(r.GetClientSecret()) },
				func(r *treatyv1.RevokeClientSecretResponse) { c.showSecret(r.GetClientSecret()) })
		},
	}
	revoke.Flags().StringVar(&revokeReason, "reason", "", "why, for the audit trail (required: revoking a secret is a security action)")
	cmd.AddCommand(recordFormats(create), recordFormats(list), recordFormats(revoke))
	return cmd
}

func (c *cli) showSecret(s *treatyv1.ClientSecret) {
	fields(c.stdout, "id", s.GetId(), "workload", s.GetWorkloadId(), "created", ts(s.GetCreateTime()),
		"expires", ts(s.GetExpireTime()), "revoked", ts(s.GetRevokeTime()), "creator", s.GetCreator())
}

// secretColumns are a client secret's columns (never the secret itself, which only create shows).
var secretColumns = []string{"id", "workload", "created", "expires", "revoked", "creator"}

func secretView(ss ...*treatyv1.ClientSecret) view {
	v := view{header: secretColumns}
	for _, s := range ss {
		v.rows = append(v.rows, []string{s.GetId(), s.GetWorkloadId(), instant(s.GetCreateTime()), instant(s.GetExpireTime()),
			instant(s.GetRevokeTime()), s.GetCreator()})
	}
	return v
}

// parseDays parses a Go duration or a whole number of days ("30d"); "" is zero (the default).
func parseDays(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 {
			return 0, fmt.Errorf("want a positive number of days such as 30d, or a duration such as 720h")
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("want a positive number of days such as 30d, or a duration such as 720h")
	}
	return d, nil
}
