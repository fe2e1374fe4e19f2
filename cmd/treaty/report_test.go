package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services"
)

// reportServer runs every service (the report service beside the registry) on loopback, with
// partner bank (critical tier) whose integration pay has no owner and issues bearer tokens, and
// returns the CLI flags that reach it as its admin.
func reportServer(t *testing.T) []string {
	t.Helper()
	_, conn, flags := startServer(t, services.Config{Posture: services.PostureConfig{Interval: time.Hour}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := treatyv1.NewRegistryServiceClient(conn)
	if _, err := reg.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Actor: "alice", Activate: true, ApprovedBy: "bob", Partner: &treatyv1.Partner{
		Id: "bank", DisplayName: "Big Bank", OwnerTeam: "treasury", RiskTier: treatyv1.RiskTier_RISK_TIER_CRITICAL,
		ContractEndTime: timestamppb.New(time.Now().Add(365 * 24 * time.Hour)), AccountableOwner: "carol@example.com",
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Actor: "alice", Activate: true, ApprovedBy: "bob", Integration: &treatyv1.Integration{
		Id: "pay", PartnerId: "bank", AllowedScopes: []string{"pay:write"}, Audiences: []string{"api"}, MaxCredentialTtl: durationpb.New(time.Hour),
		Environment: "staging", SenderConstraint: treatyv1.SenderConstraint_SENDER_CONSTRAINT_NONE,
	}}); err != nil {
		t.Fatal(err)
	}
	return flags
}

func TestReportCommands(t *testing.T) {
	flags := reportServer(t)
	cli := func(args ...string) (int, string, string) { return treaty(t, append(args, flags...)...) }
	ok := func(args ...string) string {
		t.Helper()
		code, out, errOut := cli(args...)
		if code != exitOK {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}
	contains := func(name, out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", name, w, out)
			}
		}
	}

	out := ok("report", "posture")
	contains("posture table", out, "2 findings (0 critical, 1 high, 1 medium, 0 low)", "SEVERITY", "OWASP NHI",
		"HIGH", "NHI4 Insecure Authentication", "partner/bank integration/pay", "MEDIUM", "NHI1 Improper Offboarding", "has no owner")

	contains("latest", ok("report", "posture", "--latest"), "computed ")
	var resp struct {
		Findings []struct {
			ID       string `json:"id"`
			Severity string `json:"severity"`
			OWASP    string `json:"owasp_nhi"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(ok("report", "posture", "-o", "json", "--min-severity", "high")), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Findings) != 1 || resp.Findings[0].Severity != "SEVERITY_HIGH" || resp.Findings[0].OWASP != "NHI4" {
		t.Errorf("posture json: %+v", resp)
	}
	contains("posture yaml", ok("report", "posture", "-o", "yaml"), "findings:\n  - id: bearer_tokens_for_critical_partner:partner/bank/integration/pay", "owasp_nhi: NHI4")
	rows, err := csv.NewReader(strings.NewReader(ok("report", "posture", "-o", "csv"))).ReadAll()
	if err != nil || len(rows) != 3 || rows[0][0] != "severity" || rows[1][0] != "high" || rows[1][2] != "bearer_tokens_for_critical_partner" {
		t.Errorf("posture csv: %q, %v", rows, err)
	}

	contains("inventory table", ok("report", "inventory"), "ID", "CONTRACT END", "LIVE CREDENTIALS", "bank", "Big Bank", "critical", "carol@example.com")
	rows, err = csv.NewReader(strings.NewReader(ok("report", "inventory", "--integrations", "-o", "csv"))).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][0] != "pay" || rows[1][3] != "staging" || rows[1][8] != "none" {
		t.Errorf("inventory csv: %q, %v", rows, err)
	}

	out = ok("report", "compliance")
	contains("compliance table", out, "partners by state", "active 1", "== OWASP NHI Top 10 (2025) ==", "NHI1  Improper Offboarding",
		"== NIST CSF 2.0 ==", "GV.SC-10", "== NIST SP 800-207 ==", "Tenet 7", "evidence: ", "integrations_without_owner=1")
	var comp struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(ok("report", "compliance", "--framework", "csf", "-o", "json")), &comp); err != nil {
		t.Fatal(err)
	}
	if len(comp.Items) != 10 || comp.Items[0].ID != "GV.SC-01" {
		t.Errorf("compliance --framework csf: %+v", comp)
	}

	for _, tt := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown output", []string{"report", "posture", "-o", "xml"}, exitUsage, `-o must be table, json, yaml or csv, not "xml"`},
		{"no csv for a stream", []string{"decisions", "tail", "-o", "csv"}, exitUsage, `decisions tail: -o must be table or json, not "csv"`},
		{"bad severity", []string{"report", "posture", "--min-severity", "urgent"}, exitUsage, "--min-severity"},
		{"bad framework", []string{"report", "compliance", "--framework", "iso"}, exitUsage, "--framework"},
		{"unknown partner", []string{"report", "inventory", "--partner", "nobody"}, exitError, "NOT_FOUND"},
		{"bad partner id", []string{"report", "posture", "--partner", "Bad Id"}, exitUsage, "--partner"},
		{"bad partner id for the inventory", []string{"report", "inventory", "--partner", "-x"}, exitUsage, "--partner"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cli(tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.msg) {
				t.Errorf("exit %d, want %d with %q\n%s%s", code, tt.code, tt.msg, out, errOut)
			}
		})
	}
}
