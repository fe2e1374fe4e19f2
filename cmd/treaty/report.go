package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/posture"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/services"
)

func (c *cli) reportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Posture findings, the inventory and a compliance report (-o table|json|yaml|csv)",
		Long: `Reports for security teams and auditors, from the report service beside the registry.

  posture     findings mapped to the OWASP Non-Human Identities Top 10 (2025)
  inventory   every partner (or integration) with owners, contract, review and live credentials
  compliance  OWASP NHI Top 10, NIST CSF 2.0 GV.SC and NIST SP 800-207 tenets: controls and evidence

Tables by default; -o json, yaml or csv for scripts.`,
	}
	cmd.AddCommand(c.reportPostureCmd(), c.reportInventoryCmd(), c.reportComplianceCmd())
	return cmd
}

func (c *cli) reportClient() (treatyv1.ReportServiceClient, error) {
	conn, err := c.conn(services.Registry) // the report service runs beside the registry
	if err != nil {
		return nil, err
	}
	return treatyv1.NewReportServiceClient(conn), nil
}

func (c *cli) reportPostureCmd() *cobra.Command {
	var latest bool
	var minSeverity, partner string
	cmd := &cobra.Command{
		Use:   "posture",
		Short: "Posture findings, critical first, each with its OWASP NHI Top 10 item",
		Long: `Posture findings, critical first: ex-partner credentials still live, contracts ended without
offboarding, integrations without an owner, secrets, keys and credentials past their age, granted
but unused scopes, workloads and secrets never used, overdue reviews, one identity across
environments, and weak client authentication for high-risk partners.

They are computed now; --latest shows the service's latest scheduled computation instead (cheaper
on a large inventory). Exit status 0 even with findings; use -o json and a severity filter to gate
on them.`,
		Args:        args(0, ""),
		Annotations: map[string]string{outputsAnnotation: recordOutputs},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if partner != "" {
				if err := checkIDFlag("partner", partner); err != nil {
					return err
				}
			}
			req := &treatyv1.GetPostureRequest{Refresh: !latest, PartnerId: partner}
			if minSeverity != "" {
				s, ok := posture.ParseSeverity(minSeverity)
				if !ok {
					return usagef("--min-severity must be low, medium, high or critical, not %q", minSeverity)
				}
				req.MinSeverity = treatyv1.Severity(s)
			}
			client, err := c.reportClient()
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			resp, err := client.GetPosture(ctx, req)
			if err != nil {
				return err
			}
			return c.printReport(resp, postureRows(resp), func(w io.Writer) { c.showPosture(w, resp) })
		},
	}
	cmd.Flags().BoolVar(&latest, "latest", false, "show the latest scheduled computation instead of computing the findings now")
	cmd.Flags().StringVar(&minSeverity, "min-severity", "", "only findings of at least this severity: low, medium, high or critical")
	cmd.Flags().StringVar(&partner, "partner", "", "only findings about this partner")
	return cmd
}

func (c *cli) reportInventoryCmd() *cobra.Command {
	var partner string
	var integrations bool
	cmd := &cobra.Command{
		Use:         "inventory",
		Short:       "Every partner with owners, contract, review dates and live credentials (or --integrations)",
		Args:        args(0, ""),
		Annotations: map[string]string{outputsAnnotation: recordOutputs},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if partner != "" {
				if err := checkIDFlag("partner", partner); err != nil {
					return err
				}
			}
			client, err := c.reportClient()
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			resp, err := client.GetInventoryReport(ctx, &treatyv1.GetInventoryReportRequest{PartnerId: partner})
			if err != nil {
				return err
			}
			header, rows := partnerRows(resp)
			if integrations {
				header, rows = integrationRows(resp)
			}
			return c.printReport(resp, append([][]string{header}, rows...), func(w io.Writer) {
				table(w, header, rows)
				if resp.GetInventoryUnavailable() {
					fmt.Fprintln(w, "\nnote: the issuer's inventory could not be read; live credential counts are missing")
				}
			})
		},
	}
	cmd.Flags().StringVar(&partner, "partner", "", "only this partner and its integrations")
	cmd.Flags().BoolVar(&integrations, "integrations", false, "one row per integration instead of per partner (table and csv)")
	return cmd
}

func (c *cli) reportComplianceCmd() *cobra.Command {
	var framework string
	frameworks := map[string]string{"owasp": "OWASP NHI Top 10 (2025)", "csf": "NIST CSF 2.0", "800-207": "NIST SP 800-207"}
	cmd := &cobra.Command{
		Use:   "compliance",
		Short: "OWASP NHI Top 10, NIST CSF 2.0 GV.SC and SP 800-207 tenets: the controls Treaty enforces and live evidence",
		Long: `For each OWASP Non-Human Identities Top 10 (2025) item, NIST CSF 2.0 GV.SC outcome (GV.SC-01 to
GV.SC-10) and NIST SP 800-207 zero trust tenet (1 to 7): the controls Treaty enforces and the live
evidence that they operate (counts of partners by state, live credentials, lifetimes, revocations
and blocks, the last confirmed offboardings from the audit trail, open findings).`,
		Args:        args(0, ""),
		Annotations: map[string]string{outputsAnnotation: recordOutputs},
		RunE: func(cmd *cobra.Command, _ []string) error {
			only := ""
			if framework != "" {
				var ok bool
				if only, ok = frameworks[framework]; !ok {
					return usagef("--framework must be owasp, csf or 800-207, not %q", framework)
				}
			}
			client, err := c.reportClient()
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			resp, err := client.GetComplianceReport(ctx, &treatyv1.GetComplianceReportRequest{})
			if err != nil {
				return err
			}
			if only != "" {
				resp.Items = slices.DeleteFunc(resp.Items, func(it *treatyv1.ComplianceItem) bool { return it.GetFramework() != only })
			}
			return c.printReport(resp, complianceRows(resp), func(w io.Writer) { showCompliance(w, resp) })
		},
	}
	cmd.Flags().StringVar(&framework, "framework", "", "only one framework: owasp, csf or 800-207")
	return cmd
}

// printReport prints a report in the -o format: the message as JSON or YAML, rows (a header
// first) as CSV, or the readable form text writes.
func (c *cli) printReport(m proto.Message, rows [][]string, text func(io.Writer)) error {
	return c.render(m, view{header: rows[0], rows: rows[1:]}, func() { text(c.stdout) })
}

func severityName(s treatyv1.Severity) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "SEVERITY_"))
}

func subject(f *treatyv1.Finding) string {
	var parts []string
	for _, p := range [][2]string{{"partner", f.GetPartnerId()}, {"integration", f.GetIntegrationId()}, {"workload", f.GetWorkloadId()}, {"credential", f.GetCredentialId()}} {
		if p[1] != "" {
			parts = append(parts, p[0]+"/"+p[1])
		}
	}
	return strings.Join(parts, " ")
}

func evidenceString(ev map[string]string) string {
	keys := make([]string, 0, len(ev))
	for k := range ev {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + ev[k]
	}
	return strings.Join(parts, "; ")
}

func postureRows(resp *treatyv1.GetPostureResponse) [][]string {
	rows := [][]string{{"severity", "owasp_nhi", "rule", "partner_id", "integration_id", "workload_id", "credential_id", "message", "evidence", "id"}}
	for _, f := range resp.GetFindings() {
		rows = append(rows, []string{severityName(f.GetSeverity()), f.GetOwaspNhi(), f.GetRule(), f.GetPartnerId(), f.GetIntegrationId(),
			f.GetWorkloadId(), f.GetCredentialId(), f.GetMessage(), evidenceString(f.GetEvidence()), f.GetId()})
	}
	return rows
}

func (c *cli) showPosture(w io.Writer, resp *treatyv1.GetPostureResponse) {
	fs := resp.GetFindings()
	counts := map[treatyv1.Severity]int{}
	for _, f := range fs {
		counts[f.GetSeverity()]++
	}
	fmt.Fprintf(w, "computed %s: %d findings (%d critical, %d high, %d medium, %d low)\n", ts(resp.GetComputeTime()), len(fs),
		counts[treatyv1.Severity_SEVERITY_CRITICAL], counts[treatyv1.Severity_SEVERITY_HIGH], counts[treatyv1.Severity_SEVERITY_MEDIUM], counts[treatyv1.Severity_SEVERITY_LOW])
	if len(fs) > 0 {
		fmt.Fprintln(w)
		rows := make([][]string, len(fs))
		for i, f := range fs {
			rows[i] = []string{strings.ToUpper(severityName(f.GetSeverity())), f.GetOwaspNhi() + " " + f.GetOwaspNhiTitle(), subject(f), f.GetMessage()}
		}
		table(w, []string{"SEVERITY", "OWASP NHI", "SUBJECT", "FINDING"}, rows)
	}
	for _, n := range resp.GetNotes() {
		fmt.Fprintln(w, "\nnote: "+n)
	}
}

func partnerRows(resp *treatyv1.GetInventoryReportResponse) ([]string, [][]string) {
	header := []string{"ID", "NAME", "STATE", "TIER", "RELATIONSHIP", "OWNER TEAM", "ACCOUNTABLE", "SECURITY CONTACT", "CONTRACT", "CONTRACT END",
		"NEXT REVIEW", "DATA", "INTEGRATIONS", "WORKLOADS", "LIVE CREDENTIALS", "LAST SEEN"}
	var rows [][]string
	for _, p := range resp.GetPartners() {
		rows = append(rows, []string{p.GetId(), p.GetDisplayName(), stateName(p.GetState()), registry.TierName(p.GetRiskTier()),
			dash(registry.RelationshipName(p.GetRelationshipType())), dash(p.GetOwnerTeam()), dash(p.GetAccountableOwner()),
			dash(p.GetSecurityContact()), dash(p.GetContractId()), contractEndDate(p.GetContractEndTime()), date(p.GetNextReviewTime()),
			dash(registry.ClassificationName(p.GetDataClassification())), strconv.Itoa(int(p.GetIntegrationCount())),
			strconv.Itoa(int(p.GetWorkloadCount())), strconv.FormatUint(p.GetLiveCredentials(), 10), ts(p.GetLastSeenTime())})
	}
	return header, rows
}

func integrationRows(resp *treatyv1.GetInventoryReportResponse) ([]string, [][]string) {
	header := []string{"ID", "PARTNER", "STATE", "ENVIRONMENT", "OWNER", "SCOPES", "MAX TTL", "AUTH METHODS", "SENDER CONSTRAINT",
		"WORKLOADS", "LIVE CREDENTIALS", "LAST SEEN", "LAST RECERTIFIED"}
	var rows [][]string
	for _, in := range resp.GetIntegrations() {
		methods := make([]string, len(in.GetClientAuthMethods()))
		for i, m := range in.GetClientAuthMethods() {
			methods[i] = registry.MethodName(m)
		}
		rows = append(rows, []string{in.GetId(), in.GetPartnerId(), stateName(in.GetState()), dash(in.GetEnvironment()), dash(in.GetOwner()),
			strings.Join(in.GetAllowedScopes(), " "), in.GetMaxCredentialTtl().AsDuration().String(), strings.Join(methods, " "),
			registry.ConstraintName(in.GetSenderConstraint()), strconv.Itoa(int(in.GetWorkloadCount())),
			strconv.FormatUint(in.GetLiveCredentials(), 10), ts(in.GetLastSeenTime()), date(in.GetLastRecertifiedTime())})
	}
	return header, rows
}

func complianceRows(resp *treatyv1.GetComplianceReportResponse) [][]string {
	rows := [][]string{{"framework", "id", "title", "controls", "evidence", "open_findings"}}
	for _, it := range resp.GetItems() {
		rows = append(rows, []string{it.GetFramework(), it.GetId(), it.GetTitle(), strings.Join(it.GetControls(), " | "),
			itemEvidence(it), strconv.Itoa(int(it.GetOpenFindings()))})
	}
	return rows
}

func itemEvidence(it *treatyv1.ComplianceItem) string {
	parts := make([]string, len(it.GetEvidence()))
	for i, ev := range it.GetEvidence() {
		parts[i] = ev.GetName() + "=" + ev.GetValue()
	}
	return strings.Join(parts, "; ")
}

func showCompliance(w io.Writer, resp *treatyv1.GetComplianceReportResponse) {
	s := resp.GetSummary()
	maxTTL := "unknown"
	if s.GetMaxCredentialTtl() != nil {
		maxTTL = s.GetMaxCredentialTtl().AsDuration().String()
	}
	fields(w, "generated", ts(resp.GetGenerateTime()),
		"partners by state", mapString(s.GetPartnersByState()),
		"integrations by state", mapString(s.GetIntegrationsByState()),
		"workloads", strconv.FormatUint(s.GetWorkloads(), 10),
		"live credentials", strconv.FormatUint(s.GetLiveCredentials(), 10),
		"max credential TTL", maxTTL+" (longest integration: "+s.GetLongestIntegrationTtl().AsDuration().String()+")",
		"revoked credentials", strconv.FormatUint(s.GetRevokedCredentials(), 10),
		"blocks in force", strconv.FormatUint(s.GetBlocksInForce(), 10),
		"feed sequence", strconv.FormatUint(s.GetFeedSequence(), 10),
		"open findings", mapString(s.GetFindingsBySeverity()))
	if offs := s.GetLastOffboardings(); len(offs) > 0 {
		fmt.Fprintln(w, "\nlast confirmed offboardings:")
		rows := make([][]string, len(offs))
		for i, o := range offs {
			rows[i] = []string{o.GetPartnerId(), ts(o.GetConfirmTime()), o.GetActor(), strconv.FormatUint(o.GetAuditSequence(), 10), evidenceString(o.GetDetails())}
		}
		table(w, []string{"PARTNER", "CONFIRMED", "ACTOR", "AUDIT SEQ", "DETAILS"}, rows)
	}
	last := ""
	for _, it := range resp.GetItems() {
		if it.GetFramework() != last {
			last = it.GetFramework()
			fmt.Fprintf(w, "\n== %s ==\n", last)
		}
		open := ""
		if it.GetFramework() == "OWASP NHI Top 10 (2025)" {
			open = fmt.Sprintf("  [%d open findings]", it.GetOpenFindings())
		}
		fmt.Fprintf(w, "\n%s  %s%s\n", it.GetId(), it.GetTitle(), open)
		for _, ctl := range it.GetControls() {
			fmt.Fprintln(w, "  - "+ctl)
		}
		fmt.Fprintln(w, "  evidence: "+itemEvidence(it))
	}
	for _, n := range resp.GetNotes() {
		fmt.Fprintln(w, "\nnote: "+n)
	}
}

func mapString[V uint64 | int](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func dash(s string) string {
	if s == "" || s == "unspecified" {
		return "-"
	}
	return s
}

func date(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.DateOnly)
}

// daysValue is a duration flag that also takes whole days ("90d").
type daysValue struct{ d *time.Duration }

// days returns a flag value for d, set to def.
func days(d *time.Duration, def time.Duration) pflag.Value {
	*d = def
	return daysValue{d}
}

func (v daysValue) String() string {
	if v.d == nil {
		return ""
	}
	if *v.d%(24*time.Hour) == 0 && *v.d > 0 {
		return fmt.Sprintf("%dd", *v.d/(24*time.Hour))
	}
	return v.d.String()
}

func (v daysValue) Set(s string) error {
	d, err := parseDays(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

func (v daysValue) Type() string { return "days" }
