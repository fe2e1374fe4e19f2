package main

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseInventory feeds the import file parser arbitrary YAML and JSON: it never panics, every
// error points at a line of the file, and a file it accepts has one line per item.
func FuzzParseInventory(f *testing.F) {
	f.Add([]byte("partners:\n  - id: acme\n    display_name: Acme\nintegrations:\n  - id: acme-billing\n    partner_id: acme\n    environment: production\n"))
	f.Add([]byte(`{"partners":[{"id":"acme"}],"workloads":[{"id":"w1","integration_id":"acme-billing"}]}`))
	f.Add([]byte("partners:\n  - id: acme\n  - id: acme\n"))
	f.Add([]byte("partners:\n  - id: acme\n    colour: red\n"))
	f.Add([]byte("partners: [\n"))
	f.Add([]byte("\ufeff{\"partners\": 3}"))
	f.Add([]byte("---\npartners: []\n---\nworkloads: []\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, errs := parseInventory(data)
		// An upper bound on the lines YAML sees: it also breaks lines at a lone \r, NEL, LS and PS.
		lines := 1
		for _, brk := range []string{"\n", "\r", "\u0085", "\u2028", "\u2029"} {
			lines += bytes.Count(data, []byte(brk))
		}
		for _, e := range errs {
			if e.Line < 0 || e.Line > lines {
				t.Fatalf("error at line %d of a %d-line file: %s", e.Line, lines, e)
			}
			if e.Message == "" {
				t.Fatalf("error without a message at line %d", e.Line)
			}
		}
		if len(errs) > 0 || file == nil {
			return
		}
		for kind, n := range map[string]int{"partners": len(file.partners), "integrations": len(file.integrations), "workloads": len(file.workloads)} {
			if len(file.lines[kind]) != n {
				t.Fatalf("%d %s but %d lines recorded", n, kind, len(file.lines[kind]))
			}
		}
	})
}

// Files that hold no lists import nothing; a second YAML document is refused, since its items
// would otherwise be skipped without a word.
func TestParseInventoryDocuments(t *testing.T) {
	tests := []struct {
		data     string
		wantErr  string
		wantLine int
	}{
		{data: ""},
		{data: "---\n"},
		{data: "---"},
		{data: "partners:\n  - id: acme\n---\nworkloads: []\n", wantErr: "second YAML document", wantLine: 3},
		{data: "- acme\n", wantErr: "must be a mapping", wantLine: 1},
	}
	for _, tc := range tests {
		f, errs := parseInventory([]byte(tc.data))
		switch {
		case tc.wantErr == "" && (len(errs) > 0 || f == nil || f.items() != 0):
			t.Errorf("%q: %v, want an empty import", tc.data, errs)
		case tc.wantErr != "" && (len(errs) != 1 || !strings.Contains(errs[0].Message, tc.wantErr) || errs[0].Line != tc.wantLine):
			t.Errorf("%q: %v, want one error at line %d saying %q", tc.data, errs, tc.wantLine, tc.wantErr)
		}
	}
}
