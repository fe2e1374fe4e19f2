package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

func (c *cli) partnerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "partner",
		Short: "Register, approve, activate, inspect, suspend and offboard partners",
		Long: `A partner moves through proposed → approved → active ⇄ suspended → offboarding → terminated.
'partner create' proposes it; 'partner approve' and 'partner activate' move it on (or
'partner create ... --activate --approved-by NAME' does all three in one audited step).`,
	}
	cmd.AddCommand(c.partnerCreateCmd(),
		recordFormats(registryGetCmd(c, "partner", func(ctx context.Context, rc treatyv1.RegistryServiceClient, id string) (*treatyv1.GetPartnerResponse, error) {
			return rc.GetPartner(ctx, &treatyv1.GetPartnerRequest{Id: id})
		}, func(r *treatyv1.GetPartnerResponse) view { return partnerView(r.GetPartner()) },
			func(r *treatyv1.GetPartnerResponse) { c.showPartner(r.GetPartner(), 0) })),
		c.partnerListCmd(), c.partnerApproveCmd(), c.partnerActivateCmd(), c.partnerReactivateCmd(), c.partnerUpdateCmd(),
		c.partnerSuspendCmd(), c.partnerOffboardCmd(), c.offboardingCmd())
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

// parseDay reads a YYYY-MM-DD flag as the start of that day, UTC.
func parseDay(flag, v string) (*timestamppb.Timestamp, error) {
	d, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return nil, usagef("--%s %q is not a date; use YYYY-MM-DD", flag, v)
	}
	return timestamppb.New(d), nil
}

// partnerFlags are a partner's fields as flags, shared by create and update.
type partnerFlags struct {
	name, legalName, owner, accountable, backup, contact, contractID string
	relationship, classification, tier                               string
	contractStart, contractEnd, assessed, assessment, nextReview     string
	breachHours                                                      int32
}

func (pf *partnerFlags) register(f *pflag.FlagSet, create bool) {
	f.StringVar(&pf.name, "name", "", "display name")
	f.StringVar(&pf.legalName, "legal-name", "", "registered legal name")
	f.StringVar(&pf.relationship, "relationship", "", "relationship type: vendor, saas, managed_service_provider, data_sharing or embedded_sdk")
	f.StringVar(&pf.owner, "owner", "", "internal team accountable for the partner")
	f.StringVar(&pf.accountable, "accountable-owner", "", "the person accountable for the relationship")
	f.StringVar(&pf.backup, "backup-owner", "", "who stands in for the accountable owner")
	f.StringVar(&pf.contact, "security-contact", "", "the partner's security contact, told of incidents")
	f.Int32Var(&pf.breachHours, "breach-notice-hours", 0, "hours the partner has by contract to notify a breach")
	f.StringVar(&pf.contractID, "contract-id", "", "the contract's id")
	f.StringVar(&pf.contractStart, "contract-start", "", "first day of the contract, YYYY-MM-DD (UTC)")
	f.StringVar(&pf.contractEnd, "contract-end", "", "last day of the contract, YYYY-MM-DD (UTC)")
	tierDefault := ""
	if create {
		tierDefault = "medium"
	}
	f.StringVar(&pf.tier, "risk-tier", tierDefault, "risk tier: low, medium, high or critical (high and critical forbid client secrets)")
	f.StringVar(&pf.classification, "data-classification", "", "highest data classification: public, internal, confidential or restricted")
	f.StringVar(&pf.assessed, "last-assessment", "", "date of the last risk assessment, YYYY-MM-DD")
	f.StringVar(&pf.assessment, "assessment-result", "", "the last assessment's result")
	f.StringVar(&pf.nextReview, "next-review", "", "date the next review is due, YYYY-MM-DD")
}

// partnerFlagFields maps each flag to the proto field it sets.
var partnerFlagFields = []struct{ flag, field string }{
	{"name", "display_name"}, {"legal-name", "legal_name"}, {"relationship", "relationship_type"},
	{"owner", "owner_team"}, {"accountable-owner", "accountable_owner"}, {"backup-owner", "backup_owner"},
	{"security-contact", "security_contact"}, {"breach-notice-hours", "breach_notice_hours"},
	{"contract-id", "contract_id"}, {"contract-start", "contract_start_time"}, {"contract-end", "contract_end_time"},
	{"risk-tier", "risk_tier"}, {"data-classification", "data_classification"},
	{"last-assessment", "last_assessment_time"}, {"assessment-result", "last_assessment_result"},
	{"next-review", "next_review_time"},
}

// partner builds the partner the flags describe, and the proto fields of the flags set on cmd.
func (pf *partnerFlags) partner(cmd *cobra.Command) (*treatyv1.Partner, []string, error) {
	p := &treatyv1.Partner{
		DisplayName: pf.name, LegalName: pf.legalName, OwnerTeam: pf.owner, AccountableOwner: pf.accountable,
		BackupOwner: pf.backup, SecurityContact: pf.contact, BreachNoticeHours: pf.breachHours, ContractId: pf.contractID,
		LastAssessmentResult: pf.assessment,
	}
	changed := func(flag string) bool { return cmd.Flags().Changed(flag) }
	var err error
	if changed("contract-end") || pf.contractEnd != "" {
		end, err := parseContractEnd(pf.contractEnd)
		if err != nil {
			return nil, nil, err
		}
		p.ContractEndTime = timestamppb.New(end)
	}
	for _, d := range []struct {
		flag, v string
		to      **timestamppb.Timestamp
	}{{"contract-start", pf.contractStart, &p.ContractStartTime}, {"last-assessment", pf.assessed, &p.LastAssessmentTime}, {"next-review", pf.nextReview, &p.NextReviewTime}} {
		if d.v != "" {
			if *d.to, err = parseDay(d.flag, d.v); err != nil {
				return nil, nil, err
			}
		}
	}
	if pf.tier != "" {
		t, ok := registry.ParseTier(pf.tier)
		if !ok {
			return nil, nil, usagef("--risk-tier must be low, medium, high or critical, not %q", pf.tier)
		}
		p.RiskTier = t
	}
	if pf.relationship != "" {
		r, ok := registry.ParseRelationship(pf.relationship)
		if !ok {
			return nil, nil, usagef("--relationship must be vendor, saas, managed_service_provider, data_sharing or embedded_sdk, not %q", pf.relationship)
		}
		p.RelationshipType = r
	}
	if pf.classification != "" {
		d, ok := registry.ParseClassification(pf.classification)
		if !ok {
			return nil, nil, usagef("--data-classification must be public, internal, confidential or restricted, not %q", pf.classification)
		}
		p.DataClassification = d
	}
	var fields []string
	for _, ff := range partnerFlagFields {
		if changed(ff.flag) {
			fields = append(fields, ff.field)
		}
	}
	return p, fields, nil
}

func (c *cli) partnerCreateCmd() *cobra.Command {
	var id, approvedBy, reason string
	var activate bool
	var pf partnerFlags
	cmd := &cobra.Command{
		Use:   "create --id ID --name NAME --owner TEAM --contract-end YYYY-MM-DD [--activate --approved-by NAME]",
		Short: "Propose a partner (access ends at the end of the contract's last day, UTC)",
		Long: `Propose a partner: it must be approved ('treaty partner approve') and activated
('treaty partner activate') before any credential is issued under it. With --activate and
--approved-by it is created, approved and activated in one audited step.`,
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(cmd, "id", "name", "owner", "contract-end"); err != nil {
				return err
			}
			if err := checkIDFlag("id", id); err != nil {
				return err
			}
			if activate != (approvedBy != "") {
				return usagef("--activate and --approved-by go together: who approved the partner")
			}
			p, _, err := pf.partner(cmd)
			if err != nil {
				return err
			}
			p.Id = id
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.CreatePartnerResponse, error) {
				return rc.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Actor: c.actor, Partner: p, Activate: activate, ApprovedBy: approvedBy, Reason: reason})
			}, func(r *treatyv1.CreatePartnerResponse) view { return partnerView(r.GetPartner()) },
				func(r *treatyv1.CreatePartnerResponse) { c.showPartner(r.GetPartner(), r.GetSequence()) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "partner id (lower-case letters, digits, dashes)")
	pf.register(f, true)
	f.BoolVar(&activate, "activate", false, "approve and activate it at once (needs --approved-by)")
	f.StringVar(&approvedBy, "approved-by", "", "who approved the partner, with --activate")
	return recordFormats(cmd)
}

func (c *cli) showPartner(p *treatyv1.Partner, seq uint64) {
	kv := []string{"id", p.GetId(), "name", p.GetDisplayName()}
	opt := func(k, v string) {
		if v != "" {
			kv = append(kv, k, v)
		}
	}
	opt("legal name", p.GetLegalName())
	if p.GetRelationshipType() != 0 {
		kv = append(kv, "relationship", registry.RelationshipName(p.GetRelationshipType()))
	}
	kv = append(kv, "owner", p.GetOwnerTeam())
	opt("accountable owner", p.GetAccountableOwner())
	opt("backup owner", p.GetBackupOwner())
	opt("security contact", p.GetSecurityContact())
	if h := p.GetBreachNoticeHours(); h != 0 {
		kv = append(kv, "breach notice", strconv.Itoa(int(h))+"h")
	}
	kv = append(kv, "state", stateName(p.GetState()), "risk tier", registry.TierName(p.GetRiskTier()))
	if p.GetDataClassification() != 0 {
		kv = append(kv, "data classification", registry.ClassificationName(p.GetDataClassification()))
	}
	opt("contract id", p.GetContractId())
	opt("contract start", day(p.GetContractStartTime()))
	kv = append(kv, "contract end", fmt.Sprintf("%s (access ends %s)", contractEndDate(p.GetContractEndTime()), ts(p.GetContractEndTime())))
	opt("last assessment", day(p.GetLastAssessmentTime()))
	opt("assessment result", p.GetLastAssessmentResult())
	opt("next review", day(p.GetNextReviewTime()))
	if p.GetApprovedBy() != "" {
		kv = append(kv, "approved", p.GetApprovedBy()+" at "+ts(p.GetApproveTime()))
	}
	kv = append(kv, "created", ts(p.GetCreateTime()), "updated", ts(p.GetUpdateTime()), "etag", p.GetEtag())
	fields(c.stdout, withSequence(kv, seq)...)
}

// partnerColumns are a partner's columns for CSV; a table shows partnerBrief.
var (
	partnerColumns = []string{"id", "name", "legal_name", "relationship", "owner", "accountable_owner", "backup_owner",
		"security_contact", "breach_notice_hours", "state", "risk_tier", "data_classification", "contract_id", "contract_start",
		"contract_end", "last_assessment", "assessment_result", "next_review", "approved_by", "approved", "created", "updated", "etag"}
	partnerBrief = []string{"id", "name", "owner", "state", "risk_tier", "contract_end"}
)

func partnerRow(p *treatyv1.Partner) []string {
	rel, class := "", ""
	if p.GetRelationshipType() != 0 {
		rel = registry.RelationshipName(p.GetRelationshipType())
	}
	if p.GetDataClassification() != 0 {
		class = registry.ClassificationName(p.GetDataClassification())
	}
	hours := ""
	if p.GetBreachNoticeHours() != 0 {
		hours = strconv.Itoa(int(p.GetBreachNoticeHours()))
	}
	return []string{p.GetId(), p.GetDisplayName(), p.GetLegalName(), rel, p.GetOwnerTeam(), p.GetAccountableOwner(), p.GetBackupOwner(),
		p.GetSecurityContact(), hours, stateName(p.GetState()), registry.TierName(p.GetRiskTier()), class, p.GetContractId(),
		day(p.GetContractStartTime()), contractEndDate(p.GetContractEndTime()), day(p.GetLastAssessmentTime()),
		p.GetLastAssessmentResult(), day(p.GetNextReviewTime()), p.GetApprovedBy(), instant(p.GetApproveTime()),
		instant(p.GetCreateTime()), instant(p.GetUpdateTime()), p.GetEtag()}
}

func partnerView(ps ...*treatyv1.Partner) view {
	v := view{header: partnerColumns, brief: partnerBrief}
	for _, p := range ps {
		v.rows = append(v.rows, partnerRow(p))
	}
	return v
}

func (c *cli) partnerListCmd() *cobra.Command {
	var state, owner, tier, endBefore string
	cmd := &cobra.Command{
		Use:   "list [--state STATE] [--owner NAME] [--tier TIER] [--contract-end-before YYYY-MM-DD]",
		Short: "List partners, optionally filtered",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &treatyv1.ListPartnersRequest{Owner: owner, PageSize: 1000}
			if state != "" {
				s, ok := treatyv1.PartnerState_value["PARTNER_STATE_"+upper(state)]
				if !ok || s == 0 {
					return usagef("--state must be proposed, approved, active, suspended, offboarding or terminated, not %q", state)
				}
				req.State = treatyv1.PartnerState(s)
			}
			if tier != "" {
				t, ok := registry.ParseTier(tier)
				if !ok {
					return usagef("--tier must be low, medium, high or critical, not %q", tier)
				}
				req.RiskTier = t
			}
			if endBefore != "" {
				t, err := parseDay("contract-end-before", endBefore)
				if err != nil {
					return err
				}
				req.ContractEndBefore = t
			}
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.ListPartnersResponse, error) {
				all := &treatyv1.ListPartnersResponse{}
				for {
					resp, err := rc.ListPartners(ctx, req)
					if err != nil {
						return nil, err
					}
					all.Partners = append(all.Partners, resp.GetPartners()...)
					if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
						return all, nil
					}
				}
			}, func(all *treatyv1.ListPartnersResponse) view { return partnerView(all.GetPartners()...) }, nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "only partners in this state: proposed, approved, active, suspended, offboarding, terminated")
	f.StringVar(&owner, "owner", "", "only partners whose owner team, accountable or backup owner is this")
	f.StringVar(&tier, "tier", "", "only partners of this risk tier: low, medium, high, critical")
	f.StringVar(&endBefore, "contract-end-before", "", "only partners whose access ends before this date, YYYY-MM-DD (UTC)")
	return recordFormats(cmd)
}

// partnerWrite is the response of a registry write on a partner.
type partnerWrite interface {
	proto.Message
	GetPartner() *treatyv1.Partner
	GetSequence() uint64
}

// partnerStepCmd builds `partner VERB ID` for a lifecycle step; withReason adds a --reason flag
// (required by the registry for the steps that block or restore), extra adds the step's own flags.
func partnerStepCmd[R partnerWrite](c *cli, verb, short string, withReason bool, extra func(*pflag.FlagSet),
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
			if err := checkIDArg("partner", a[0]); err != nil {
				return err
			}
			if withReason && reason == "" {
				return usagef("--reason must not be empty")
			}
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (R, error) {
				return call(ctx, rc, a[0], reason)
			}, func(r R) view { return partnerView(r.GetPartner()) }, func(r R) { c.showPartner(r.GetPartner(), r.GetSequence()) })
		},
	}
	if withReason {
		cmd.Flags().StringVar(&reason, "reason", "partner "+verb+" with the treaty CLI", "why, for the audit trail")
	}
	if extra != nil {
		extra(cmd.Flags())
	}
	return recordFormats(cmd)
}

func (c *cli) partnerApproveCmd() *cobra.Command {
	var approvedBy string
	return partnerStepCmd(c, "approve", "Approve a proposed partner (records who approved it, default --actor)", false,
		func(f *pflag.FlagSet) {
			f.StringVar(&approvedBy, "approved-by", "", "who approved it (default: --actor)")
		},
		func(ctx context.Context, rc treatyv1.RegistryServiceClient, id, _ string) (*treatyv1.ApprovePartnerResponse, error) {
			return rc.ApprovePartner(ctx, &treatyv1.ApprovePartnerRequest{Id: id, ApprovedBy: approvedBy, Actor: c.actor})
		})
}

func (c *cli) partnerActivateCmd() *cobra.Command {
	return partnerStepCmd(c, "activate", "Activate an approved partner: its integrations can then be activated", false, nil,
		func(ctx context.Context, rc treatyv1.RegistryServiceClient, id, _ string) (*treatyv1.ActivatePartnerResponse, error) {
			return rc.ActivatePartner(ctx, &treatyv1.ActivatePartnerRequest{Id: id, Actor: c.actor})
		})
}

func (c *cli) partnerReactivateCmd() *cobra.Command {
	return partnerStepCmd(c, "reactivate", "Lift a partner's suspension (credentials from before it stay dead)", true, nil,
		func(ctx context.Context, rc treatyv1.RegistryServiceClient, id, reason string) (*treatyv1.ReactivatePartnerResponse, error) {
			return rc.ReactivatePartner(ctx, &treatyv1.ReactivatePartnerRequest{Id: id, Reason: reason, Actor: c.actor})
		})
}

func (c *cli) partnerSuspendCmd() *cobra.Command {
	return partnerStepCmd(c, "suspend", "Suspend a partner: every credential under it is blocked", true, nil,
		func(ctx context.Context, rc treatyv1.RegistryServiceClient, id, reason string) (*treatyv1.SuspendPartnerResponse, error) {
			return rc.SuspendPartner(ctx, &treatyv1.SuspendPartnerRequest{Id: id, Reason: reason, Actor: c.actor})
		})
}

// partnerOffboardCmd runs the offboarding workflow (offboard.go).
func (c *cli) partnerOffboardCmd() *cobra.Command { return c.offboardCmd() }

func (c *cli) partnerUpdateCmd() *cobra.Command {
	var etag, reason string
	var pf partnerFlags
	cmd := &cobra.Command{
		Use:   "update ID [--owner TEAM] [--contract-end YYYY-MM-DD] [...] [--etag ETAG]",
		Short: "Change a partner's descriptive fields (only the flags given)",
		Long: `Change the fields given as flags. The update carries the partner's etag (read first, or
--etag from an earlier 'partner get'): if someone changed the partner since, it is refused
as ABORTED; read it again and retry.`,
		Args: args(1, "ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkIDArg("partner", a[0]); err != nil {
				return err
			}
			p, mask, err := pf.partner(cmd)
			if err != nil {
				return err
			}
			if len(mask) == 0 {
				return usagef("name at least one field to change, for example --owner TEAM")
			}
			p.Id, p.Etag = a[0], etag
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.UpdatePartnerResponse, error) {
				if p.Etag == "" {
					cur, err := rc.GetPartner(ctx, &treatyv1.GetPartnerRequest{Id: p.Id})
					if err != nil {
						return nil, err
					}
					p.Etag = cur.GetPartner().GetEtag()
				}
				return rc.UpdatePartner(ctx, &treatyv1.UpdatePartnerRequest{Partner: p, UpdateMask: &fieldmaskpb.FieldMask{Paths: mask}, Reason: reason, Actor: c.actor})
			}, func(r *treatyv1.UpdatePartnerResponse) view { return partnerView(r.GetPartner()) },
				func(r *treatyv1.UpdatePartnerResponse) { c.showPartner(r.GetPartner(), r.GetSequence()) })
		},
	}
	pf.register(cmd.Flags(), false)
	cmd.Flags().StringVar(&etag, "etag", "", "the etag the change is based on (default: the partner's current one)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit trail (optional)")
	return recordFormats(cmd)
}
