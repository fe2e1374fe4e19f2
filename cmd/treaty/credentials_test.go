package main

import (
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"time"

	"github.com/treaty-dev/treaty/issuer/issuertest"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/issuersvc"
)

func TestCredentialsListAndCount(t *testing.T) {
	w := issuertest.Start(t, issuertest.Config{})
	w.CreatePartner("acme", time.Now().Add(24*time.Hour))
	w.CreateIntegration(issuertest.Integration{ID: "orders", PartnerID: "acme", Scopes: []string{"orders:read"}, Audiences: []string{"api"}, MaxTTL: time.Hour})
	w.CreateIntegration(issuertest.Integration{ID: "bills", PartnerID: "acme", Scopes: []string{"bills:read"}, Audiences: []string{"api"}, MaxTTL: time.Hour})
	bot, payer := w.CreateWorkload("bot", "orders"), w.CreateWorkload("payer", "bills")
	m := w.StartIssuer()
	short := m.Mint(bot, "orders:read", "api", time.Second)
	long := m.Mint(bot, "orders:read", "api", time.Hour)
	bill := m.Mint(payer, "bills:read", "api", time.Hour)
	addr := grpctest.Serve(t, issuersvc.New(issuersvc.Config{Issuer: m.Issuer, Logger: issuertest.Quiet}).Register).Target()
	time.Sleep(1100 * time.Millisecond) // short expires (lifetimes are whole seconds)
	cli := func(args ...string) (int, string, string) { return treaty(t, append(args, "--issuer", addr)...) }

	for _, tc := range []struct {
		name      string
		args      []string
		want, not []string
	}{
		{"all", []string{"credentials", "list"}, []string{short.ID, long.ID, bill.ID, "private_key_jwt", "none", "LAST SEEN"}, nil},
		{"by integration", []string{"credentials", "list", "--integration", "orders"}, []string{short.ID, long.ID}, []string{bill.ID}},
		{"by workload, live", []string{"credentials", "list", "--workload", "bot", "--live"}, []string{long.ID}, []string{short.ID, bill.ID}},
		{"by partner, expired", []string{"credentials", "list", "--partner", "acme", "--expired"}, []string{short.ID}, []string{long.ID, bill.ID}},
		{"count", []string{"credentials", "count"}, []string{"PARTNER", "acme", "2"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(tc.args...)
			if code != exitOK {
				t.Fatalf("exit %d\n%s%s", code, out, errOut)
			}
			for _, s := range tc.want {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(out, s) {
					t.Errorf("output holds %q:\n%s", s, out)
				}
			}
		})
	}
	code, out, errOut := cli("credentials", "list", "--workload", "payer", "-o", "json")
	var rec struct {
		ID         string `json:"id"`
		AuthMethod string `json:"auth_method"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &rec) != nil || rec.ID != bill.ID || rec.AuthMethod != "private_key_jwt" {
		t.Fatalf("list -o json: exit %d, %+v\n%s%s", code, rec, out, errOut)
	}
	code, out, errOut = cli("credentials", "list", "--workload", "payer", "-o", "csv")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != exitOK || err != nil || len(rows) != 2 || rows[0][0] != "id" || rows[1][0] != bill.ID || rows[1][8] != "private_key_jwt" {
		t.Fatalf("list -o csv: exit %d, %v, %q%s", code, err, rows, errOut)
	}
	code, out, errOut = cli("credentials", "count", "-o", "yaml")
	var counts struct {
		Counts []struct {
			PartnerID string `yaml:"partner_id"`
			LiveCount string `yaml:"live_count"`
		} `yaml:"counts"`
	}
	if code != exitOK || yaml.Unmarshal([]byte(out), &counts) != nil || len(counts.Counts) != 1 || counts.Counts[0].LiveCount != "2" {
		t.Fatalf("count -o yaml: exit %d, %+v\n%s%s", code, counts, out, errOut)
	}
	for _, bad := range [][]string{
		{"credentials", "list", "--live", "--expired"},
		{"credentials", "list", "--partner", "Acme!"},
		{"credentials", "list", "--limit", "-1"},
	} {
		if code, out, errOut := cli(bad...); code != exitUsage {
			t.Errorf("%v: exit %d, want usage\n%s%s", bad, code, out, errOut)
		}
	}
}
