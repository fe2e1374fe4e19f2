package reportsvc_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/registry"
)

// findings returns a fresh computation's findings by id.
func (e *env) findings(req *treatyv1.GetPostureRequest) map[string]*treatyv1.Finding {
	e.t.Helper()
	req.Refresh = true
	resp, err := e.client.GetPosture(e.ctx, req)
	if err != nil {
		e.t.Fatalf("GetPosture: %v", err)
	}
	if len(resp.GetNotes()) != 0 {
		e.t.Errorf("notes: %q", resp.GetNotes())
	}
	out := map[string]*treatyv1.Finding{}
	for _, f := range resp.GetFindings() {
		out[f.GetId()] = f
	}
	return out
}

// onboard sets up acme (medium tier) with an owned integration and bank (critical tier) with an
// ownerless bearer-token integration, one workload and one credential each.
func (e *env) onboard() (bot, payer issuer.Credential) {
	e.partner(registry.Partner{ID: "acme", AccountableOwner: "alice@example.com", SecurityContact: "soc@acme.example", ContractID: "C-1"})
	e.partner(registry.Partner{ID: "bank", RiskTier: treatyv1.RiskTier_RISK_TIER_CRITICAL})
	e.integration(registry.Integration{ID: "orders", PartnerID: "acme", Owner: "alice@example.com"})
	e.integration(registry.Integration{ID: "pay", PartnerID: "bank", Environment: "staging",
		SenderConstraint: treatyv1.SenderConstraint_SENDER_CONSTRAINT_NONE})
	e.workload("bot", "orders")
	e.workload("payer", "pay")
	bot, payer = e.issue("bot"), e.issue("payer")
	if _, err := e.iss.ReportUsage([]issuer.Usage{{CredentialID: bot.ID, LastSeen: e.clock.Now()}}); err != nil {
		e.t.Fatal(err)
	}
	return bot, payer
}

func TestPosture(t *testing.T) {
	e := newEnv(t)
	e.onboard()

	got := e.findings(&treatyv1.GetPostureRequest{})
	want := map[string]treatyv1.Severity{
		"integration_without_owner:partner/bank/integration/pay":          treatyv1.Severity_SEVERITY_MEDIUM,
		"bearer_tokens_for_critical_partner:partner/bank/integration/pay": treatyv1.Severity_SEVERITY_HIGH,
	}
	if len(got) != len(want) {
		t.Fatalf("findings %v, want %v", keys(got), want)
	}
	for id, sev := range want {
		if f := got[id]; f == nil || f.GetSeverity() != sev {
			t.Errorf("finding %s = %v, want severity %v", id, f, sev)
		}
	}
	if f := got["bearer_tokens_for_critical_partner:partner/bank/integration/pay"]; f.GetOwaspNhi() != "NHI4" ||
		f.GetOwaspNhiTitle() != "Insecure Authentication" || f.GetEvidence()["live_bearer_credentials"] != "1" || f.GetIntegrationId() != "pay" {
		t.Errorf("bearer finding %v", f)
	}

	// Offboarding acme leaves its credential live: a new critical finding, notified.
	if _, _, err := e.reg.OffboardPartner(e.ctx, "acme", "contract over", "alice"); err != nil {
		t.Fatal(err)
	}
	got = e.findings(&treatyv1.GetPostureRequest{MinSeverity: treatyv1.Severity_SEVERITY_CRITICAL})
	f := got["ex_partner_live_credentials:partner/acme"]
	if len(got) != 1 || f == nil || f.GetEvidence()["live_credentials"] != "1" || f.GetOwaspNhi() != "NHI1" {
		t.Fatalf("critical findings %v", got)
	}
	if n := len(e.newOnes); n != 1 || len(e.newOnes[0]) != 1 || e.newOnes[0][0].ID != f.GetId() {
		t.Errorf("OnNew calls %v, want the ex-partner finding once", e.newOnes)
	}
	if got := e.findings(&treatyv1.GetPostureRequest{PartnerId: "bank"}); len(got) != 2 {
		t.Errorf("bank's findings %v", keys(got))
	}
	// Without refresh: the latest computation, critical first.
	latest, err := e.client.GetPosture(e.ctx, &treatyv1.GetPostureRequest{})
	if err != nil || len(latest.GetFindings()) != 3 || latest.GetFindings()[0].GetRule() != "ex_partner_live_credentials" {
		t.Errorf("latest = %v, %v", latest, err)
	}

	// A hundred days on: every registered key is past the default maximum age of 90 days (its
	// registration time comes from the audit trail), the workloads were not used in the window,
	// and the bank's integration has not used its scopes.
	e.clock.Advance(100 * 24 * time.Hour)
	got = e.findings(&treatyv1.GetPostureRequest{PartnerId: "bank"})
	for _, id := range []string{"workload_never_used:partner/bank/integration/pay/workload/payer", "granted_scopes_unused:partner/bank/integration/pay"} {
		if got[id] == nil {
			t.Errorf("no finding %s in %v", id, keys(got))
		}
	}
	found := false
	for id, f := range got {
		if strings.HasPrefix(id, "workload_key_too_old:partner/bank/integration/pay/workload/payer/credential/") {
			found = f.GetEvidence()["age_days"] == "100"
		}
	}
	if !found {
		t.Errorf("no 100-day-old key finding for payer in %v", keys(got))
	}
}

func TestPostureBadRequests(t *testing.T) {
	e := newEnv(t)
	for name, tt := range map[string]struct {
		req   *treatyv1.GetPostureRequest
		field string
	}{
		"unknown severity": {&treatyv1.GetPostureRequest{MinSeverity: 9}, "min_severity"},
		"bad partner id":   {&treatyv1.GetPostureRequest{PartnerId: "Not An Id"}, "partner_id"},
	} {
		_, err := e.client.GetPosture(e.ctx, tt.req)
		wantStatus(t, name, err, codes.InvalidArgument, tt.field)
	}
	_, err := e.client.GetInventoryReport(e.ctx, &treatyv1.GetInventoryReportRequest{PartnerId: "-"})
	wantStatus(t, "inventory: bad partner id", err, codes.InvalidArgument, "partner_id")
	_, err = e.client.GetInventoryReport(e.ctx, &treatyv1.GetInventoryReportRequest{PartnerId: "nobody"})
	wantStatus(t, "inventory: unknown partner", err, codes.NotFound, "nobody")
}

func TestInventoryReport(t *testing.T) {
	e := newEnv(t)
	e.onboard()
	e.issue("bot")
	resp, err := e.client.GetInventoryReport(e.ctx, &treatyv1.GetInventoryReportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetInventoryUnavailable() || len(resp.GetPartners()) != 2 || len(resp.GetIntegrations()) != 2 {
		t.Fatalf("report %v", resp)
	}
	acme, orders := resp.GetPartners()[0], resp.GetIntegrations()[0]
	if acme.GetId() != "acme" || acme.GetLiveCredentials() != 2 || acme.GetIntegrationCount() != 1 || acme.GetWorkloadCount() != 1 ||
		acme.GetAccountableOwner() != "alice@example.com" || acme.GetContractId() != "C-1" || acme.GetLastSeenTime() == nil ||
		acme.GetState() != treatyv1.PartnerState_PARTNER_STATE_ACTIVE {
		t.Errorf("acme row %v", acme)
	}
	if orders.GetId() != "orders" || orders.GetLiveCredentials() != 2 || orders.GetWorkloadCount() != 1 || orders.GetEnvironment() != "production" ||
		orders.GetOwner() != "alice@example.com" {
		t.Errorf("orders row %v", orders)
	}
	resp, err = e.client.GetInventoryReport(e.ctx, &treatyv1.GetInventoryReportRequest{PartnerId: "bank"})
	if err != nil || len(resp.GetPartners()) != 1 || len(resp.GetIntegrations()) != 1 || resp.GetIntegrations()[0].GetId() != "pay" {
		t.Errorf("bank's report %v, %v", resp, err)
	}
}

func TestComplianceReport(t *testing.T) {
	e := newEnv(t)
	e.onboard()
	if _, _, err := e.reg.OffboardPartner(e.ctx, "acme", "contract over", "alice"); err != nil {
		t.Fatal(err)
	}
	resp, err := e.client.GetComplianceReport(e.ctx, &treatyv1.GetComplianceReportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	sum := resp.GetSummary()
	if sum.GetPartnersByState()["terminated"] != 1 || sum.GetPartnersByState()["active"] != 1 || sum.GetLiveCredentials() != 2 ||
		sum.GetBlocksInForce() == 0 || sum.GetFeedSequence() == 0 || sum.GetMaxCredentialTtl().AsDuration() != time.Hour ||
		sum.GetFindingsBySeverity()["critical"] != 1 || sum.GetWorkloads() != 2 {
		t.Errorf("summary %v", sum)
	}
	frameworks := map[string]int{}
	items := map[string]*treatyv1.ComplianceItem{}
	for _, it := range resp.GetItems() {
		frameworks[it.GetFramework()]++
		items[it.GetId()] = it
		if it.GetTitle() == "" || len(it.GetControls()) == 0 || len(it.GetEvidence()) == 0 {
			t.Errorf("item %s lacks a title, controls or evidence", it.GetId())
		}
		for _, ev := range it.GetEvidence() {
			if ev.GetValue() == "" {
				t.Errorf("item %s: evidence %s has no value", it.GetId(), ev.GetName())
			}
		}
	}
	if frameworks["OWASP NHI Top 10 (2025)"] != 10 || frameworks["NIST CSF 2.0"] != 10 || frameworks["NIST SP 800-207"] != 7 {
		t.Errorf("items per framework %v", frameworks)
	}
	nhi1 := evidence(items["NHI1"])
	if items["NHI1"].GetOpenFindings() != 2 || nhi1["live_credentials_of_ex_partners"] != "1" || nhi1["partners_terminated"] != "1" {
		t.Errorf("NHI1 %v", items["NHI1"])
	}
	if ev := evidence(items["GV.SC-02"]); ev["partners_with_accountable_owner"] != "1" || ev["integrations_without_owner"] != "1" {
		t.Errorf("GV.SC-02 %v", items["GV.SC-02"])
	}
	if ev := evidence(items["NHI8"]); ev["environments"] != "production:1 staging:1" {
		t.Errorf("NHI8 %v", items["NHI8"])
	}
	if len(resp.GetNotes()) != 0 {
		t.Errorf("notes %q", resp.GetNotes())
	}
}

func evidence(it *treatyv1.ComplianceItem) map[string]string {
	out := map[string]string{}
	for _, ev := range it.GetEvidence() {
		out[ev.GetName()] = ev.GetValue()
	}
	return out
}

func keys(m map[string]*treatyv1.Finding) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func wantStatus(t *testing.T, name string, err error, code codes.Code, inMessage string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), inMessage) {
		t.Errorf("%s: %v, want %v naming %q", name, err, code, inMessage)
	}
}
