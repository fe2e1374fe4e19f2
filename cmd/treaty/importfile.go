package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// An inventory file is the InventoryService's own shape, in YAML or JSON: three lists, partners,
// integrations and workloads, whose items are the registry's proto messages with their JSON
// field names (display_name or displayName; enums by name, times in RFC 3339, durations as
// "900s"). A new field of the model is therefore importable the day it is in the proto.
//
// The file is parsed item by item, keeping each item's line, so that every error (a syntax
// error, an unknown field, a bad id, a repeated id, or what the server's checks find at an item's
// index) is reported at its line.

// inventoryFile is a parsed inventory file: its items and the line each starts at.
type inventoryFile struct {
	partners     []*treatyv1.Partner
	integrations []*treatyv1.Integration
	workloads    []*treatyv1.Workload
	// lines maps a list name to its items' lines.
	lines map[string][]int
}

func (f *inventoryFile) items() int { return len(f.partners) + len(f.integrations) + len(f.workloads) }

// line returns the line of item index of list kind, 0 if unknown.
func (f *inventoryFile) line(kind string, index int) int {
	if ls := f.lines[kind]; index >= 0 && index < len(ls) {
		return ls[index]
	}
	return 0
}

// fileError is one problem of an inventory file, at a line.
type fileError struct {
	Line    int    `json:"line"`
	Kind    string `json:"kind,omitempty"`
	Index   int    `json:"index"`
	ID      string `json:"id,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (e fileError) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "line %d: ", e.Line)
	if e.Kind != "" {
		fmt.Fprintf(&b, "%s[%d]", e.Kind, e.Index)
		if e.ID != "" {
			fmt.Fprintf(&b, " (%s)", e.ID)
		}
		b.WriteString(": ")
	}
	if e.Field != "" && !strings.Contains(e.Message, e.Field) {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// itemSource is one raw item: its JSON and where it starts.
type itemSource struct {
	raw  []byte
	line int
	// keyLine finds the line of one of the item's keys (0 if unknown), for errors that name a
	// field.
	keyLine func(key string) int
}

var listNames = []string{"partners", "integrations", "workloads"}

// parseInventory parses an inventory file, YAML or JSON (JSON is tried when the first non-space
// byte is '{'), and checks what can be checked without the server: syntax, field names and
// types, ids, and ids repeated within the file. It returns the file and every error found.
func parseInventory(data []byte) (*inventoryFile, []fileError) {
	var (
		lists map[string][]itemSource
		errs  []fileError
	)
	if trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff"); len(trimmed) > 0 && trimmed[0] == '{' {
		lists, errs = splitJSON(data)
	} else {
		lists, errs = splitYAML(data)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	f := &inventoryFile{lines: map[string][]int{}}
	broken := map[string]bool{} // items that did not parse: their ids are not checked
	for _, kind := range listNames {
		for i, src := range lists[kind] {
			f.lines[kind] = append(f.lines[kind], src.line)
			var m proto.Message
			switch kind {
			case "partners":
				p := &treatyv1.Partner{}
				f.partners, m = append(f.partners, p), p
			case "integrations":
				in := &treatyv1.Integration{}
				f.integrations, m = append(f.integrations, in), in
			default:
				w := &treatyv1.Workload{}
				f.workloads, m = append(f.workloads, w), w
			}
			if err := protojson.Unmarshal(src.raw, m); err != nil {
				broken[kind+"\x00"+fmt.Sprint(i)] = true
				line := src.line
				if key := quotedName(err.Error()); key != "" && src.keyLine != nil {
					if l := src.keyLine(key); l != 0 {
						line = l
					}
				}
				errs = append(errs, fileError{Line: line, Kind: kind, Index: i, Message: protoMessage(err)})
			}
		}
	}
	for _, e := range checkIDs(f) {
		if !broken[e.Kind+"\x00"+fmt.Sprint(e.Index)] {
			errs = append(errs, e)
		}
	}
	slices.SortStableFunc(errs, func(a, b fileError) int { return a.Line - b.Line })
	return f, errs
}

// fieldREs find the field a protojson error is about: an unknown field by its quoted name, a bad
// value by the field it names.
var fieldREs = []*regexp.Regexp{
	regexp.MustCompile(`unknown field "([A-Za-z_][A-Za-z0-9_]*)"`),
	regexp.MustCompile(`field ([A-Za-z_][A-Za-z0-9_.]*)`),
}

// quotedName returns the field a protojson error names, if any (its last path element).
func quotedName(msg string) string {
	for _, re := range fieldREs {
		if m := re.FindStringSubmatch(msg); m != nil {
			return m[1][strings.LastIndex(m[1], ".")+1:]
		}
	}
	return ""
}

// protoPrefix is protojson's prefix and position (which counts within the item, not the file);
// the library puts ordinary or non-breaking spaces in it at random.
var protoPrefix = regexp.MustCompile(`^proto:[\s\x{00a0}]*(\(line \d+:\d+\):[\s\x{00a0}]*)?`)

// protoMessage strips protojson's prefix and position from an error.
func protoMessage(err error) string {
	return strings.ReplaceAll(protoPrefix.ReplaceAllString(err.Error(), ""), "\u00a0", " ")
}

// checkIDs checks the ids of every item and finds ids repeated within the file.
func checkIDs(f *inventoryFile) []fileError {
	var errs []fileError
	check := func(kind string, i int, id, field, value string) {
		if value == "" {
			errs = append(errs, fileError{Line: f.line(kind, i), Kind: kind, Index: i, ID: id, Field: field, Message: field + " is required"})
			return
		}
		if err := fail.CheckID(field, value); err != nil {
			var fe *fail.Error
			msg := err.Error()
			if errors.As(err, &fe) {
				msg = fe.Msg
			}
			errs = append(errs, fileError{Line: f.line(kind, i), Kind: kind, Index: i, ID: id, Field: field, Message: msg})
		}
	}
	seen := map[string]int{}
	dup := func(kind string, i int, id string) {
		key := kind + "\x00" + id
		if first, ok := seen[key]; ok && id != "" {
			errs = append(errs, fileError{Line: f.line(kind, i), Kind: kind, Index: i, ID: id, Field: "id",
				Message: fmt.Sprintf("id %q is already used at line %d", id, f.line(kind, first))})
			return
		}
		seen[key] = i
	}
	for i, p := range f.partners {
		check("partners", i, p.GetId(), "id", p.GetId())
		dup("partners", i, p.GetId())
	}
	for i, in := range f.integrations {
		check("integrations", i, in.GetId(), "id", in.GetId())
		check("integrations", i, in.GetId(), "partner_id", in.GetPartnerId())
		dup("integrations", i, in.GetId())
	}
	for i, w := range f.workloads {
		check("workloads", i, w.GetId(), "id", w.GetId())
		check("workloads", i, w.GetId(), "integration_id", w.GetIntegrationId())
		dup("workloads", i, w.GetId())
	}
	return errs
}

// splitYAML cuts a YAML inventory into its items, with their lines.
func splitYAML(data []byte) (map[string][]itemSource, []fileError) {
	yamlErr := func(err error) []fileError {
		return []fileError{{Line: yamlErrLine(err), Message: yamlLineRE.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "")}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlErr(err)
	}
	// A second document would otherwise be ignored without a word: its items never imported.
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, []fileError{{Line: next.Line, Message: "a second YAML document (after ---); put every list in one document"}}
	case !errors.Is(err, io.EOF):
		return nil, yamlErr(err)
	}
	if len(doc.Content) == 0 || (doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null") {
		return map[string][]itemSource{}, nil // an empty file (or document) imports nothing
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, []fileError{{Line: root.Line, Message: "the file must be a mapping with the lists partners, integrations and workloads"}}
	}
	out := map[string][]itemSource{}
	var errs []fileError
	for k := 0; k+1 < len(root.Content); k += 2 {
		key, val := root.Content[k], root.Content[k+1]
		if !slices.Contains(listNames, key.Value) {
			errs = append(errs, fileError{Line: key.Line, Message: fmt.Sprintf("unknown list %q; the lists are partners, integrations and workloads", key.Value)})
			continue
		}
		if val.Kind == yaml.ScalarNode && val.Tag == "!!null" {
			continue
		}
		if val.Kind != yaml.SequenceNode {
			errs = append(errs, fileError{Line: val.Line, Message: key.Value + " must be a list"})
			continue
		}
		for i, item := range val.Content {
			if item.Kind != yaml.MappingNode {
				errs = append(errs, fileError{Line: item.Line, Kind: key.Value, Index: i, Message: "an item must be a mapping of field names to values"})
				continue
			}
			var v any
			if err := item.Decode(&v); err != nil {
				errs = append(errs, fileError{Line: item.Line, Kind: key.Value, Index: i, Message: err.Error()})
				continue
			}
			raw, err := json.Marshal(v)
			if err != nil {
				errs = append(errs, fileError{Line: item.Line, Kind: key.Value, Index: i, Message: err.Error()})
				continue
			}
			out[key.Value] = append(out[key.Value], itemSource{raw: raw, line: item.Line, keyLine: func(name string) int {
				for j := 0; j+1 < len(item.Content); j += 2 {
					if item.Content[j].Value == name {
						return item.Content[j].Line
					}
				}
				return 0
			}})
		}
	}
	return out, errs
}

var yamlLineRE = regexp.MustCompile(`line (\d+): `)

func yamlErrLine(err error) int {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		var n int
		fmt.Sscan(m[1], &n)
		return n
	}
	return 1
}

// splitJSON cuts a JSON inventory into its items, with their lines (counted from the decoder's
// offsets).
func splitJSON(data []byte) (map[string][]itemSource, []fileError) {
	lineAt := func(off int64) int {
		off = min(max(off, 0), int64(len(data)))
		// Skip the separators before the value the offset points in front of.
		for off < int64(len(data)) && strings.ContainsRune(" \t\r\n,:", rune(data[off])) {
			off++
		}
		return bytes.Count(data[:off], []byte("\n")) + 1
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	bad := func(err error) (map[string][]itemSource, []fileError) {
		line := lineAt(dec.InputOffset())
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line = lineAt(se.Offset - 1)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, []fileError{{Line: line, Message: "unexpected end of the file"}}
		}
		return nil, []fileError{{Line: line, Message: err.Error()}}
	}
	expect := func(want json.Delim) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); !ok || d != want {
			return fmt.Errorf("expected %q, found %v", want, tok)
		}
		return nil
	}
	if err := expect('{'); err != nil {
		return bad(err)
	}
	out := map[string][]itemSource{}
	var errs []fileError
	for dec.More() {
		keyLine := lineAt(dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return bad(err)
		}
		key, _ := tok.(string)
		if !slices.Contains(listNames, key) {
			errs = append(errs, fileError{Line: keyLine, Message: fmt.Sprintf("unknown list %q; the lists are partners, integrations and workloads", key)})
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return bad(err)
			}
			continue
		}
		if err := expect('['); err != nil {
			return bad(err)
		}
		for dec.More() {
			start := dec.InputOffset()
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return bad(err)
			}
			itemStart := lineAt(start)
			// Offsets of the item's keys, for errors that name a field.
			body := raw
			base := int(start)
			out[key] = append(out[key], itemSource{raw: raw, line: itemStart, keyLine: func(name string) int {
				i := bytes.Index(data[base:min(base+len(body)+64, len(data))], []byte(`"`+name+`"`))
				if i < 0 {
					return 0
				}
				return bytes.Count(data[:base+i], []byte("\n")) + 1
			}})
		}
		if err := expect(']'); err != nil {
			return bad(err)
		}
	}
	if err := expect('}'); err != nil {
		return bad(err)
	}
	return out, errs
}
