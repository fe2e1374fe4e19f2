package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/treaty-dev/treaty/feed"
)

// printJSON writes v as one line of JSON.
func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// printProto writes a response message as JSON with the proto field names.
func (c *cli) printProto(m proto.Message) error {
	raw, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.stdout, string(raw))
	return err
}

// fields prints aligned "name: value" lines.
func fields(w io.Writer, kv ...string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[i], kv[i+1])
	}
	tw.Flush()
}

// table prints an aligned table with a header row.
func table(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func ts(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

// contractEndDate shows the last day of a contract: access ends at the start of the next day.
func contractEndDate(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Add(-time.Nanosecond).Format(time.DateOnly)
}

func stateName(s fmt.Stringer) string { return feed.StateName(s) }

// The output formats of -o. table (the default; "text" is the same) is for people: aligned tables
// and fields. json and yaml are for scripts: yaml is always the json output re-rendered, document
// for document. csv is the records as rows with every column, a header row first.
const (
	outputTable = "table"
	outputJSON  = "json"
	outputYAML  = "yaml"
	outputCSV   = "csv"
)

// outputsAnnotation lists, on a command, the -o values it takes, its default first. Commands
// without it take table and json: they print a single value or a stream (a feed sequence, a
// token, a live tail), which has no sensible csv form.
const outputsAnnotation = "treaty.outputs"

// Common -o lists.
const (
	recordOutputs = "table,json,yaml,csv" // records and lists
	valueOutputs  = "table,json"          // a single value or a stream
)

// recordFormats annotates cmd as printing records or a list, in every format, and returns it.
func recordFormats(cmd *cobra.Command) *cobra.Command { return withOutputs(cmd, recordOutputs) }

// withOutputs annotates cmd with the -o values it takes, its default first, and returns it.
func withOutputs(cmd *cobra.Command, formats string) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[outputsAnnotation] = formats
	return cmd
}

// outputs returns the -o values cmd takes, its default first.
func outputs(cmd *cobra.Command) []string {
	if a := cmd.Annotations[outputsAnnotation]; a != "" {
		return strings.Split(a, ",")
	}
	return strings.Split(valueOutputs, ",")
}

// checkOutput validates -o for cmd (the root's PersistentPreRunE, before any command runs), and
// sets the command's default when -o is not given.
func (c *cli) checkOutput(cmd *cobra.Command) error {
	formats := outputs(cmd)
	if f := cmd.Flags().Lookup("output"); f == nil || !f.Changed {
		c.output = formats[0]
		return nil
	}
	if c.output == "text" {
		c.output = outputTable // the same readable form
	}
	return c.onlyOutputs(cmd, "", formats...)
}

// onlyOutputs is a usage error unless -o is one of formats, with a note on why if note is set:
// for a command whose formats depend on its flags (revoke prints a feed sequence, revoke
// --dry-run records).
func (c *cli) onlyOutputs(cmd *cobra.Command, note string, formats ...string) error {
	if slices.Contains(formats, c.output) {
		return nil
	}
	if note != "" {
		note = " (" + note + ")"
	}
	return usagef("%s: -o must be %s, not %q%s", strings.TrimPrefix(cmd.CommandPath(), "treaty "), orList(formats), c.output, note)
}

// orList spells a list as "a, b or c".
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// view is records as rows: every column for CSV, and the columns an aligned table shows.
type view struct {
	header []string
	rows   [][]string
	// brief names the columns (of header) a table shows; nil shows them all.
	brief []string
}

// lines is a list of documents printed as JSON lines with -o json (one record a line, for
// streaming and for tools like jq -c), and as one YAML document each with -o yaml.
type lines []any

// render prints doc in the chosen format: json and yaml print doc (a proto message as indented
// JSON with the proto field names, lines one a line, any other value as one line of JSON), csv
// prints v, and table calls text when it is set (a single record's fields, a report), or prints
// v as an aligned table (an empty cell shows as "-").
func (c *cli) render(doc any, v view, text func()) error {
	switch c.output {
	case outputJSON:
		if docs, ok := doc.(lines); ok {
			for _, d := range docs {
				if err := c.printLine(d); err != nil {
					return err
				}
			}
			return nil
		}
		if m, ok := doc.(proto.Message); ok {
			return c.printProto(m)
		}
		return c.printJSON(doc)
	case outputYAML:
		docs, ok := doc.(lines)
		if !ok {
			docs = lines{doc}
		}
		enc := yaml.NewEncoder(c.stdout)
		enc.SetIndent(2)
		for _, d := range docs {
			raw, err := jsonOf(d)
			if err != nil {
				return err
			}
			var node yaml.Node
			if err := yaml.Unmarshal(raw, &node); err != nil {
				return err
			}
			blockStyle(&node)
			if err := enc.Encode(&node); err != nil {
				return err
			}
		}
		return enc.Close()
	case outputCSV:
		w := csv.NewWriter(c.stdout)
		if err := w.Write(v.header); err != nil {
			return err
		}
		if err := w.WriteAll(v.rows); err != nil {
			return err
		}
		return w.Error()
	}
	if text != nil {
		text()
		return nil
	}
	header, rows := v.header, v.rows
	if v.brief != nil {
		idx := make([]int, len(v.brief))
		for n, name := range v.brief {
			idx[n] = slices.Index(v.header, name)
		}
		header, rows = make([]string, len(idx)), make([][]string, len(v.rows))
		for n, i := range idx {
			header[n] = v.header[i]
		}
		for r, row := range v.rows {
			rows[r] = make([]string, len(idx))
			for n, i := range idx {
				rows[r][n] = row[i]
			}
		}
	}
	upper := make([]string, len(header))
	for n, h := range header {
		upper[n] = strings.ToUpper(strings.ReplaceAll(h, "_", " "))
	}
	shown := make([][]string, len(rows))
	for r, row := range rows {
		shown[r] = make([]string, len(row))
		for n, cell := range row {
			shown[r][n] = orDash(cell)
		}
	}
	table(c.stdout, upper, shown)
	return nil
}

// jsonOf is a document's JSON: a proto message with the proto field names, anything else by
// encoding/json.
func jsonOf(d any) ([]byte, error) {
	if m, ok := d.(proto.Message); ok {
		return protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	}
	return json.Marshal(d)
}

// printLine writes a document as one line of JSON.
func (c *cli) printLine(d any) error {
	if m, ok := d.(proto.Message); ok {
		raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			return err
		}
		_, err = c.stdout.Write(append(raw, '\n'))
		return err
	}
	return c.printJSON(d)
}

// writeYAML re-renders JSON as block-style YAML, keeping the fields' order (JSON is YAML; only the
// style changes).
func writeYAML(w io.Writer, jsonText []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(jsonText, &doc); err != nil {
		return err
	}
	blockStyle(&doc)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	return enc.Close()
}

func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// day shows an optional timestamp as a date, "" when unset (for CSV cells and tables).
func day(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.AsTime().UTC().Format(time.DateOnly)
}

// instant shows an optional timestamp in RFC 3339, "" when unset.
func instant(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}
