package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

func (c *cli) integrationCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "integration",
		Short: "Request, approve, activate, inspect, suspend and retire integrations (a partner's scope ceiling and limits)",
		Long: `An integration moves through requested → approved → active ⇄ suspended → retired.
'integration create' requests it; 'integration approve' and 'integration activate' move it on
(or 'integration create ... --activate --approved-by NAME' does all three in one audited step).`,
	}
	cmd.AddCommand(c.integrationCreateCmd(), c.integrationRetireCmd(),
		recordFormats(registryGetCmd(c, "integration",
			func(ctx context.Context, rc treatyv1.RegistryServiceClient, id string) (*treatyv1.GetIntegrationResponse, error) {
				return rc.GetIntegration(ctx, &treatyv1.GetIntegrationRequest{Id: id})
			}, func(r *treatyv1.GetIntegrationResponse) view { return integrationView(r.GetIntegration()) },
			func(r *treatyv1.GetIntegrationResponse) { c.showIntegration(r.GetIntegration(), 0) })),
		c.integrationListCmd(), c.integrationApproveCmd(), c.integrationActivateCmd(), c.integrationSuspendCmd(),
		c.integrationReactivateCmd(), c.integrationUpdateCmd(), c.integrationRecertifyCmd())
	return cmd
}

// integrationFlags are an integration's fields as flags, shared by create and update.
type integrationFlags struct {
	constraint, purpose, environment, ticket, owner string
	scopes, audiences, methods, ranges              []string
	maxTTL                                          time.Duration
}

func (fl *integrationFlags) register(f *pflag.FlagSet, create bool) {
	f.StringSliceVar(&fl.scopes, "scopes", nil, "scope ceiling, comma-separated")
	f.StringSliceVar(&fl.audiences, "audiences", nil, "audiences credentials may be issued for, comma-separated")
	f.DurationVar(&fl.maxTTL, "max-ttl", 0, "longest credential lifetime, for example 10m")
	f.StringSliceVar(&fl.methods, "auth-methods", nil, "client authentication methods allowed, comma-separated (default: all the partner's risk tier allows)")
	constraintDefault := ""
	if create {
		constraintDefault = "none"
	}
	f.StringVar(&fl.constraint, "sender-constraint", constraintDefault, "proof of possession every token requires: none, dpop, mtls or dpop_or_mtls")
	f.StringVar(&fl.purpose, "purpose", "", "what the integration is for")
	f.StringVar(&fl.environment, "environment", "", "the one environment its credentials are valid in, for example production, staging or test")
	f.StringSliceVar(&fl.ranges, "source-ranges", nil, "CIDR ranges requests with its credentials must come from, comma-separated (default: any)")
	f.StringVar(&fl.ticket, "approval-ticket", "", "the ticket or change request that approves it")
	f.StringVar(&fl.owner, "owner", "", "the person or team that owns it on the platform's side")
}

var integrationFlagFields = []struct{ flag, field string }{
	{"scopes", "allowed_scopes"}, {"audiences", "audiences"}, {"max-ttl", "max_credential_ttl"},
	{"auth-methods", "allowed_client_auth_methods"}, {"sender-constraint", "sender_constraint"}, {"purpose", "purpose"},
	{"environment", "environment"}, {"source-ranges", "source_ranges"}, {"approval-ticket", "approval_ticket"}, {"owner", "owner"},
}

// integration builds the integration the flags describe, and the proto fields of the flags set.
func (fl *integrationFlags) integration(cmd *cobra.Command) (*treatyv1.Integration, []string, error) {
	in := &treatyv1.Integration{
		AllowedScopes: fl.scopes, Audiences: fl.audiences, Purpose: fl.purpose, Environment: fl.environment,
		SourceRanges: fl.ranges, ApprovalTicket: fl.ticket, Owner: fl.owner,
	}
	changed := cmd.Flags().Changed
	if changed("max-ttl") {
		if fl.maxTTL <= 0 {
			return nil, nil, usagef("--max-ttl must be positive, for example 10m")
		}
		in.MaxCredentialTtl = durationpb.New(fl.maxTTL)
	}
	for _, name := range fl.methods {
		m, ok := registry.ParseMethod(name)
		if !ok {
			return nil, nil, usagef("--auth-methods: %q is not one of private_key_jwt, tls_client_auth, self_signed_tls_client_auth, client_secret_basic, client_secret_post", name)
		}
		in.AllowedClientAuthMethods = append(in.AllowedClientAuthMethods, m)
	}
	if fl.constraint != "" {
		sc, ok := registry.ParseConstraint(fl.constraint)
		if !ok {
			return nil, nil, usagef("--sender-constraint must be none, dpop, mtls or dpop_or_mtls, not %q", fl.constraint)
		}
		in.SenderConstraint = sc
	}
	if fl.environment != "" && !registry.ValidEnvironment(fl.environment) {
		return nil, nil, usagef("--environment %q must be lower-case letters, digits and dashes, for example production", fl.environment)
	}
	if _, err := registry.ParseSourceRanges("source-ranges", fl.ranges); err != nil {
		return nil, nil, usagef("--source-ranges: %v", err)
	}
	var fields []string
	for _, ff := range integrationFlagFields {
		if changed(ff.flag) {
			fields = append(fields, ff.field)
		}
	}
	return in, fields, nil
}

func (c *cli) integrationCreateCmd() *cobra.Command {
	var partner, id, approvedBy, reason string
	var activate bool
	var fl integrationFlags
	cmd := &cobra.Command{
		Use:   "create --partner ID --id ID --environment ENV --scopes a,b --audiences x,y --max-ttl 10m [--activate --approved-by NAME]",
		Short: "Request an integration under a partner",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(cmd, "partner", "id", "environment", "scopes", "audiences", "max-ttl"); err != nil {
				return err
			}
			for _, f := range [][2]string{{"partner", partner}, {"id", id}} {
				if err := checkIDFlag(f[0], f[1]); err != nil {
					return err
				}
			}
			if activate != (approvedBy != "") {
				return usagef("--activate and --approved-by go together: who approved the integration")
			}
			in, _, err := fl.integration(cmd)
			if err != nil {
				return err
			}
			in.Id, in.PartnerId = id, partner
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.CreateIntegrationResponse, error) {
				return rc.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Actor: c.actor, Integration: in, Activate: activate, ApprovedBy: approvedBy, Reason: reason})
			}, func(r *treatyv1.CreateIntegrationResponse) view { return integrationView(r.GetIntegration()) },
				func(r *treatyv1.CreateIntegrationResponse) { c.showIntegration(r.GetIntegration(), r.GetSequence()) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&partner, "partner", "", "the partner's id")
	f.StringVar(&id, "id", "", "integration id")
	f.StringVar(&reason, "reason", "", "why, for the audit trail (optional)")
	fl.register(f, true)
	f.BoolVar(&activate, "activate", false, "approve and activate it at once (needs --approved-by; the partner must be active)")
	f.StringVar(&approvedBy, "approved-by", "", "who approved the integration, with --activate")
	return recordFormats(cmd)
}

func (c *cli) showIntegration(i *treatyv1.Integration, seq uint64) {
	kv := []string{"id", i.GetId(), "partner", i.GetPartnerId(), "state", stateName(i.GetState()), "environment", i.GetEnvironment()}
	opt := func(k, v string) {
		if v != "" {
			kv = append(kv, k, v)
		}
	}
	opt("purpose", i.GetPurpose())
	opt("owner", i.GetOwner())
	kv = append(kv, "scopes", strings.Join(i.GetAllowedScopes(), ","), "audiences", strings.Join(i.GetAudiences(), ","),
		"max ttl", i.GetMaxCredentialTtl().AsDuration().String(), "auth methods", strings.Join(methodNames(i.GetAllowedClientAuthMethods()), ","),
		"sender constraint", registry.ConstraintName(i.GetSenderConstraint()))
	opt("source ranges", strings.Join(i.GetSourceRanges(), ","))
	if i.GetApprovedBy() != "" {
		kv = append(kv, "approved", i.GetApprovedBy()+" at "+ts(i.GetApproveTime()))
	}
	opt("approval ticket", i.GetApprovalTicket())
	opt("last recertified", instant(i.GetLastRecertifyTime()))
	kv = append(kv, "created", ts(i.GetCreateTime()), "etag", i.GetEtag())
	fields(c.stdout, withSequence(kv, seq)...)
}

var (
	integrationColumns = []string{"id", "partner", "state", "environment", "purpose", "owner", "scopes", "audiences", "max_ttl",
		"auth_methods", "sender_constraint", "source_ranges", "approved_by", "approved", "approval_ticket", "last_recertified",
		"created", "updated", "etag"}
	integrationBrief = []string{"id", "partner", "state", "environment", "owner", "scopes"}
)

func integrationView(is ...*treatyv1.Integration) view {
	v := view{header: integrationColumns, brief: integrationBrief}
	for _, i := range is {
		v.rows = append(v.rows, []string{i.GetId(), i.GetPartnerId(), stateName(i.GetState()), i.GetEnvironment(), i.GetPurpose(),
			i.GetOwner(), strings.Join(i.GetAllowedScopes(), " "), strings.Join(i.GetAudiences(), " "),
			i.GetMaxCredentialTtl().AsDuration().String(), strings.Join(methodNames(i.GetAllowedClientAuthMethods()), " "),
			registry.ConstraintName(i.GetSenderConstraint()), strings.Join(i.GetSourceRanges(), " "), i.GetApprovedBy(),
			instant(i.GetApproveTime()), i.GetApprovalTicket(), instant(i.GetLastRecertifyTime()), instant(i.GetCreateTime()),
			instant(i.GetUpdateTime()), i.GetEtag()})
	}
	return v
}

func (c *cli) integrationListCmd() *cobra.Command {
	var partner, state, owner, env string
	cmd := &cobra.Command{
		Use:   "list [--partner ID] [--state STATE] [--owner NAME] [--environment ENV]",
		Short: "List integrations, optionally filtered",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &treatyv1.ListIntegrationsRequest{PartnerId: partner, Owner: owner, Environment: env, PageSize: 1000}
			if partner != "" {
				if err := checkIDFlag("partner", partner); err != nil {
					return err
				}
			}
			if state != "" {
				s, ok := treatyv1.IntegrationState_value["INTEGRATION_STATE_"+upper(state)]
				if !ok || s == 0 {
					return usagef("--state must be requested, approved, active, suspended or retired, not %q", state)
				}
				req.State = treatyv1.IntegrationState(s)
			}
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.ListIntegrationsResponse, error) {
				all := &treatyv1.ListIntegrationsResponse{}
				for {
					resp, err := rc.ListIntegrations(ctx, req)
					if err != nil {
						return nil, err
					}
					all.Integrations = append(all.Integrations, resp.GetIntegrations()...)
					if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
						return all, nil
					}
				}
			}, func(all *treatyv1.ListIntegrationsResponse) view { return integrationView(all.GetIntegrations()...) }, nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&partner, "partner", "", "only this partner's integrations")
	f.StringVar(&state, "state", "", "only integrations in this state: requested, approved, active, suspended, retired")
	f.StringVar(&owner, "owner", "", "only integrations with this owner")
	f.StringVar(&env, "environment", "", "only integrations of this environment")
	return recordFormats(cmd)
}

// integrationWrite is the response of a registry write on an integration.
type integrationWrite interface {
	proto.Message
	GetIntegration() *treatyv1.Integration
}

// sequenced is a write response that carries a feed sequence.
type sequenced interface{ GetSequence() uint64 }

// integrationStepCmd builds `integration VERB ID` for a lifecycle step (see partnerStepCmd).
func integrationStepCmd[R integrationWrite](c *cli, verb, short string, withReason bool, extra func(*pflag.FlagSet),
	call func(context.Context, treatyv1.RegistryServiceClient, string, string) (R, error)) *cobra.Command {
	var reason string
	use := verb + " ID"
	if withReason {
		use += " [--reason TEXT]"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args(1, "ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkIDArg("integration", a[0]); err != nil {
				return err
			}
			if withReason && reason == "" {
				return usagef("--reason must not be empty")
			}
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (R, error) {
				return call(ctx, rc, a[0], reason)
			}, func(r R) view { return integrationView(r.GetIntegration()) }, func(r R) {
				var seq uint64
				if s, ok := any(r).(sequenced); ok {
					seq = s.GetSequence()
				}
				c.showIntegration(r.GetIntegration(), seq)
			})
		},
	}
	if withReason {
		cmd.Flags().StringVar(&reason, "reason", "integration "+verb+" with the treaty CLI", "why, for the audit trail")
	}
	if extra != nil {
		extra(cmd.Flags())
	}
	return recordFormats(cmd)
}

func (c *cli) integrationApproveCmd() *cobra.Command {
	var approvedBy, ticket string
	return integrationStepCmd(c, "approve", "Approve a requested integration (records who approved it and the ticket)", false,
		func(f *pflag.FlagSet) {
			f.StringVar(&approvedBy, "approved-by", "", "who approved it (default: --actor)")
			f.StringVar(&ticket, "ticket", "", "the ticket or change request of the approval")
		},
		func(ctx context.Context, rc treatyv1.RegistryServiceClient, id, _ string) (*treatyv1.ApproveIntegrationResponse, error) {
			return rc.ApproveIntegration(ctx, &treatyv1.ApproveIntegrationRequest{Id: id, ApprovedBy: approvedBy, ApprovalTicket: ticket, Actor: c.actor})
		})
}

func (c *cli) integrationActivateCmd() *cobra.Command {
	return integrationStepCmd(c, "activate", "Activate an approved integration of an active partner", false, nil,
		func(ctx context.Context, rc treatyv1.RegistryServiceClient, id, _ string) (*treatyv1.ActivateIntegrationResponse, error) {
			return rc.ActivateIntegration(ctx, &treatyv1.ActivateIntegrationRequest{Id: id, Actor: c.actor})
		})
}

func (c *cli) integrationSuspendCmd() *cobra.Command {
	return integrationStepCmd(c, "suspend", "Suspend an integration: every credential under it is blocked", true, nil,
		func(ctx context.Context, rc treatyv1.RegistryServiceClient, id, reason string) (*treatyv1.SuspendIntegrationResponse, error) {
			return rc.SuspendIntegration(ctx, &treatyv1.SuspendIntegrationRequest{Id: id, Reason: reason, Actor: c.actor})
		})
}

func (c *cli) integrationReactivateCmd() *cobra.Command {
	return integrationStepCmd(c, "reactivate", "Lift an integration's suspension (credentials from before it stay dead)", true, nil,
		func(ctx context.Context, rc treatyv1.RegistryServiceClient, id, reason string) (*treatyv1.ReactivateIntegrationResponse, error) {
			return rc.ReactivateIntegration(ctx, &treatyv1.ReactivateIntegrationRequest{Id: id, Reason: reason, Actor: c.actor})
		})
}

func (c *cli) integrationRecertifyCmd() *cobra.Command {
	var note string
	return integrationStepCmd(c, "recertify", "Record that an integration's access was reviewed and is still needed", false,
		func(f *pflag.FlagSet) { f.StringVar(&note, "note", "", "a note on the review, for the audit trail") },
		func(ctx context.Context, rc treatyv1.RegistryServiceClient, id, _ string) (*treatyv1.RecertifyIntegrationResponse, error) {
			return rc.RecertifyIntegration(ctx, &treatyv1.RecertifyIntegrationRequest{Id: id, Reason: note, Actor: c.actor})
		})
}

func (c *cli) integrationUpdateCmd() *cobra.Command {
	var etag, reason string
	var fl integrationFlags
	cmd := &cobra.Command{
		Use:   "update ID [--scopes a,b] [--environment ENV] [--source-ranges CIDR,...] [...] [--etag ETAG]",
		Short: "Change an integration's fields (only the flags given)",
		Long: `Change the fields given as flags. The update carries the integration's etag (read first, or
--etag from an earlier 'integration get'): if someone changed it since, it is refused as
ABORTED; read it again and retry. --source-ranges "" clears the ranges.`,
		Args: args(1, "ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkIDArg("integration", a[0]); err != nil {
				return err
			}
			in, mask, err := fl.integration(cmd)
			if err != nil {
				return err
			}
			if len(mask) == 0 {
				return usagef("name at least one field to change, for example --scopes a,b")
			}
			in.Id, in.Etag = a[0], etag
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.UpdateIntegrationResponse, error) {
				if in.Etag == "" {
					cur, err := rc.GetIntegration(ctx, &treatyv1.GetIntegrationRequest{Id: in.Id})
					if err != nil {
						return nil, err
					}
					in.Etag = cur.GetIntegration().GetEtag()
				}
				return rc.UpdateIntegration(ctx, &treatyv1.UpdateIntegrationRequest{Integration: in, UpdateMask: &fieldmaskpb.FieldMask{Paths: mask}, Reason: reason, Actor: c.actor})
			}, func(r *treatyv1.UpdateIntegrationResponse) view { return integrationView(r.GetIntegration()) },
				func(r *treatyv1.UpdateIntegrationResponse) { c.showIntegration(r.GetIntegration(), r.GetSequence()) })
		},
	}
	fl.register(cmd.Flags(), false)
	cmd.Flags().StringVar(&etag, "etag", "", "the etag the change is based on (default: the integration's current one)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit trail (optional)")
	return recordFormats(cmd)
}

func methodNames(ms []treatyv1.ClientAuthMethod) []string {
	out := make([]string, len(ms))
	for n, m := range ms {
		out[n] = registry.MethodName(m)
	}
	return out
}
