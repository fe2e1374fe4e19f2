package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/policy"
)

// caseFile is the format `treaty policy test` reads: a policy set and decision cases for it, in
// JSON. Unknown fields are errors, so a misspelt field never passes silently.
//
//	{
//	  "policy": "acme.cedar",          the policy file, relative to the case file
//	  "partner": "acme",               the partner the set belongs to
//	  "defaults": { ...case fields },  fields every case starts from
//	  "cases": [
//	    {
//	      "name": "reads from the office",
//	      "workload": "acme-bot", "integration": "acme-orders", "partner": "acme",
//	      "action": "orders:read", "resource": "orders-api",
//	      "properties": {"tier": "gold"},
//	      "context": {"source_ip": "10.1.2.3", "environment": "production",
//	                  "time": "2026-11-30T10:15:00Z"},
//	      "expect": "allow",                          allow or deny
//	      "reason": "policy_permit:acme:office-reads" optional: the reason expected
//	    }
//	  ]
//	}
//
// Reasons name the set by its partner id (a stored version would be named PARTNER@VERSION).
// Without a time, cases are decided at the current time.
type caseFile struct {
	Policy   string         `json:"policy"`
	Partner  string         `json:"partner"`
	Defaults decisionCase   `json:"defaults"`
	Cases    []decisionCase `json:"cases"`
}

type decisionCase struct {
	Name        string         `json:"name"`
	Workload    string         `json:"workload"`
	Integration string         `json:"integration"`
	Partner     string         `json:"partner"`
	Action      string         `json:"action"`
	Resource    string         `json:"resource"`
	Properties  map[string]any `json:"properties"`
	Context     caseContext    `json:"context"`
	Expect      string         `json:"expect"`
	Reason      string         `json:"reason"`
}

type caseContext struct {
	SourceIP    string `json:"source_ip"`
	Environment string `json:"environment"`
	Time        string `json:"time"`
}

// caseResult is one case's outcome, as printed with -o json.
type caseResult struct {
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Allow  bool   `json:"allow"`
	Reason string `json:"reason"`
	Error  string `json:"error,omitempty"`
}

// withDefaults fills the fields a case leaves empty from d.
func (k decisionCase) withDefaults(d decisionCase) decisionCase {
	pick := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	k.Workload, k.Integration, k.Partner = pick(k.Workload, d.Workload), pick(k.Integration, d.Integration), pick(k.Partner, d.Partner)
	k.Action, k.Resource, k.Expect = pick(k.Action, d.Action), pick(k.Resource, d.Resource), pick(k.Expect, d.Expect)
	k.Context.SourceIP = pick(k.Context.SourceIP, d.Context.SourceIP)
	k.Context.Environment = pick(k.Context.Environment, d.Context.Environment)
	k.Context.Time = pick(k.Context.Time, d.Context.Time)
	if k.Properties == nil {
		k.Properties = d.Properties
	}
	return k
}

// input turns a case into the policy input, or says what is wrong with it.
func (k decisionCase) input(partner string) (*policy.Input, error) {
	in := &policy.Input{
		Partner: k.Partner, Integration: k.Integration, Workload: k.Workload, Action: k.Action, Resource: k.Resource,
		Properties: k.Properties, Environment: k.Context.Environment, Now: time.Now(),
	}
	if in.Partner == "" {
		in.Partner = partner
	}
	if in.Workload == "" || in.Integration == "" || in.Action == "" || in.Resource == "" {
		return nil, fmt.Errorf("a case needs workload, integration, action and resource")
	}
	if k.Expect != "allow" && k.Expect != "deny" {
		return nil, fmt.Errorf("expect must be allow or deny, not %q", k.Expect)
	}
	if k.Context.SourceIP != "" {
		ip, err := netip.ParseAddr(k.Context.SourceIP)
		if err != nil {
			return nil, fmt.Errorf("context.source_ip %q is not an IP address", k.Context.SourceIP)
		}
		in.SourceIP = ip
	}
	if k.Context.Time != "" {
		t, err := time.Parse(time.RFC3339, k.Context.Time)
		if err != nil {
			return nil, fmt.Errorf("context.time %q is not an RFC 3339 time (2026-11-30T10:15:00Z)", k.Context.Time)
		}
		in.Now = t
	}
	return in, nil
}

func (c *cli) policyTestCmd() *cobra.Command {
	var policyFile string
	cmd := &cobra.Command{
		Use:   "test FILE.json [--policy FILE.cedar]",
		Short: "Run decision cases against a policy set locally, and fail if any does not decide as expected",
		Long: `Run the decision cases of FILE.json against a policy set, here, without a server: each case
names a principal (workload, integration, partner), an action, a resource with its properties and a
context, and the decision expected (and optionally its reason). Prints PASS or FAIL per case and
exits 1 if any case fails. Only the policies are evaluated: the grants the decision point checks
first (scope ceiling, audiences, credential) are not part of a case.`,
		Args: args(1, "FILE.json"),
		RunE: func(cmd *cobra.Command, a []string) error {
			raw, err := c.readFile(a[0])
			if err != nil {
				return err
			}
			var cf caseFile
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&cf); err != nil {
				return usagef("%s: %v", a[0], err)
			}
			if policyFile == "" {
				if cf.Policy == "" {
					return usagef("%s names no policy file: set \"policy\" or pass --policy", a[0])
				}
				policyFile = filepath.Join(filepath.Dir(a[0]), cf.Policy)
			}
			if cf.Partner == "" {
				return usagef("%s names no partner: set \"partner\"", a[0])
			}
			text, err := c.readFile(policyFile)
			if err != nil {
				return err
			}
			set, err := policy.Parse(cf.Partner, string(text))
			if err != nil {
				return &exitErr{code: exitError, err: fmt.Errorf("%s: %v", policyFile, err)}
			}
			results, failed := runCases(set, &cf)
			v := view{header: []string{"name", "pass", "decision", "reason", "error"}}
			for _, r := range results {
				v.rows = append(v.rows, []string{r.Name, fmt.Sprint(r.Pass), decisionWord(r.Allow), r.Reason, r.Error})
			}
			if err := c.render(results, v, func() {
				for _, r := range results {
					switch {
					case r.Error != "":
						fmt.Fprintf(c.stdout, "FAIL  %s: %s\n", r.Name, r.Error)
					case r.Pass:
						fmt.Fprintf(c.stdout, "PASS  %s\n", r.Name)
					default:
						fmt.Fprintf(c.stdout, "FAIL  %s: got %s (%s)\n", r.Name, decisionWord(r.Allow), r.Reason)
					}
				}
				fmt.Fprintf(c.stdout, "%d passed, %d failed\n", len(results)-failed, failed)
			}); err != nil {
				return err
			}
			if failed > 0 {
				return &exitErr{code: exitError}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&policyFile, "policy", "", "the policy file, instead of the one the case file names")
	return recordFormats(cmd)
}

// runCases decides every case and returns the results and how many failed.
func runCases(set *policy.Set, cf *caseFile) ([]caseResult, int) {
	results := make([]caseResult, 0, len(cf.Cases))
	failed := 0
	for i, k := range cf.Cases {
		k = k.withDefaults(cf.Defaults)
		r := caseResult{Name: k.Name}
		if r.Name == "" {
			r.Name = fmt.Sprintf("case %d", i+1)
		}
		in, err := k.input(cf.Partner)
		if err != nil {
			r.Error = err.Error()
		} else {
			got := set.Evaluate(in)
			r.Allow, r.Reason = got.Allow, got.Reasons[0]
			r.Pass = got.Allow == (k.Expect == "allow") && (k.Reason == "" || k.Reason == r.Reason)
			if !r.Pass && k.Reason != "" && got.Allow == (k.Expect == "allow") {
				r.Error = fmt.Sprintf("got %s with reason %s, want reason %s", decisionWord(got.Allow), r.Reason, k.Reason)
			}
		}
		if !r.Pass {
			failed++
		}
		results = append(results, r)
	}
	return results, failed
}

func decisionWord(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}
