package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

func (c *cli) integrationCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "integration", Short: "Register, inspect and retire integrations (a partner's scope ceiling and limits)"}
	var partner, id, constraint string
	var scopes, audiences, methods []string
	var maxTTL time.Duration
	create := &cobra.Command{
		Use:   "create --partner ID --id ID --scopes a,b --audiences x,y --max-ttl 10m",
		Short: "Register an integration under a partner",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(cmd, "partner", "id", "scopes", "audiences", "max-ttl"); err != nil {
				return err
			}
			for _, f := range [][2]string{{"partner", partner}, {"id", id}} {
				if err := checkIDFlag(f[0], f[1]); err != nil {
					return err
				}
			}
			if maxTTL <= 0 {
				return usagef("--max-ttl must be positive, for example 10m")
			}
			var allowed []treatyv1.ClientAuthMethod
			for _, name := range methods {
				m, ok := registry.ParseMethod(name)
				if !ok {
					return usagef("--auth-methods: %q is not one of private_key_jwt, tls_client_auth, self_signed_tls_client_auth, client_secret_basic, client_secret_post", name)
				}
				allowed = append(allowed, m)
			}
			sc, ok := registry.ParseConstraint(constraint)
			if !ok {
				return usagef("--sender-constraint must be none, dpop, mtls or dpop_or_mtls, not %q", constraint)
			}
			return registryCall(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.CreateIntegrationResponse, error) {
				return rc.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Actor: c.actor, Integration: &treatyv1.Integration{
					Id: id, PartnerId: partner, AllowedScopes: scopes, Audiences: audiences, MaxCredentialTtl: durationpb.New(maxTTL),
					AllowedClientAuthMethods: allowed, SenderConstraint: sc,
				}})
			}, func(r *treatyv1.CreateIntegrationResponse) { c.showIntegration(r.GetIntegration(), r.GetSequence()) })
		},
	}
	f := create.Flags()
	f.StringVar(&partner, "partner", "", "the partner's id")
	f.StringVar(&id, "id", "", "integration id")
	f.StringSliceVar(&scopes, "scopes", nil, "scope ceiling, comma-separated")
	f.StringSliceVar(&audiences, "audiences", nil, "audiences credentials may be issued for, comma-separated")
	f.DurationVar(&maxTTL, "max-ttl", 0, "longest credential lifetime, for example 10m")
	f.StringSliceVar(&methods, "auth-methods", nil, "client authentication methods allowed, comma-separated (default: all the partner's risk tier allows)")
	f.StringVar(&constraint, "sender-constraint", "none", "proof of possession every token requires: none, dpop, mtls or dpop_or_mtls")

	cmd.AddCommand(create, c.integrationRetireCmd(), registryGetCmd(c, "integration",
		func(ctx context.Context, rc treatyv1.RegistryServiceClient, id string) (*treatyv1.GetIntegrationResponse, error) {
			return rc.GetIntegration(ctx, &treatyv1.GetIntegrationRequest{Id: id})
		}, func(r *treatyv1.GetIntegrationResponse) { c.showIntegration(r.GetIntegration(), 0) }))
	return cmd
}

func (c *cli) showIntegration(i *treatyv1.Integration, seq uint64) {
	fields(c.stdout, withSequence([]string{"id", i.GetId(), "partner", i.GetPartnerId(), "state", stateName(i.GetState()),
		"scopes", strings.Join(i.GetAllowedScopes(), ","), "audiences", strings.Join(i.GetAudiences(), ","),
		"max ttl", i.GetMaxCredentialTtl().AsDuration().String(), "auth methods", strings.Join(methodNames(i.GetAllowedClientAuthMethods()), ","),
		"sender constraint", registry.ConstraintName(i.GetSenderConstraint()), "created", ts(i.GetCreateTime())}, seq)...)
}

func methodNames(ms []treatyv1.ClientAuthMethod) []string {
	out := make([]string, len(ms))
	for n, m := range ms {
		out[n] = registry.MethodName(m)
	}
	return out
}
