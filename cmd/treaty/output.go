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

// The output formats of -o: text (aligned tables and fields, the default) and json for every
// command; yaml and csv for the commands that show registry records (annotated with
// outputAnnotation), so that scripts get the same records in the format they parse.
const (
	outputText = "text"
	outputJSON = "json"
	outputYAML = "yaml"
	outputCSV  = "csv"
)

// outputAnnotation marks a command that renders yaml and csv too.
const outputAnnotation = "treaty/output"

// recordFormats annotates cmd as rendering every output format, and returns it.
func recordFormats(cmd *cobra.Command) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[outputAnnotation] = "all"
	return cmd
}

// checkOutput validates -o for cmd.
func (c *cli) checkOutput(cmd *cobra.Command) error {
	if c.output == "table" {
		c.output = outputText // the same readable form
	}
	if a := cmd.Annotations[outputsAnnotation]; a != "" { // a command that lists its own formats
		if allowed := strings.Split(a, ","); !slices.Contains(allowed, c.output) && !(c.output == outputText && slices.Contains(allowed, "table")) {
			return usagef("-o must be %s, not %q", strings.Join(allowed, ", "), c.output)
		}
		return nil
	}
	switch c.output {
	case outputText, outputJSON:
		return nil
	case outputYAML, outputCSV:
		if cmd.Annotations[outputAnnotation] == "" {
			return usagef("-o %s is for the commands that show registry records (get, list and the lifecycle commands); use text or json here", c.output)
		}
		return nil
	}
	return usagef("-o must be text, json, yaml or csv, not %q", c.output)
}

// view is records as rows: every column for CSV, and the columns an aligned table shows.
type view struct {
	header []string
	rows   [][]string
	// brief names the columns (of header) a table shows; nil shows them all.
	brief []string
}

// render prints m in the chosen format: json and yaml print the message, csv prints v, text
// prints v as an aligned table, or calls text when it is set (a single record's fields).
func (c *cli) render(m proto.Message, v view, text func()) error {
	switch c.output {
	case outputJSON:
		return c.printProto(m)
	case outputYAML:
		return c.printYAML(m)
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
			header[n] = strings.ToUpper(strings.ReplaceAll(v.header[i], "_", " "))
		}
		for r, row := range v.rows {
			rows[r] = make([]string, len(idx))
			for n, i := range idx {
				rows[r][n] = row[i]
			}
		}
	} else {
		header = make([]string, len(v.header))
		for n, h := range v.header {
			header[n] = strings.ToUpper(strings.ReplaceAll(h, "_", " "))
		}
	}
	table(c.stdout, header, rows)
	return nil
}

// printYAML writes a message as YAML with the proto field names (through its JSON form, so the
// two formats always agree).
func (c *cli) printYAML(m proto.Message) error {
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	enc := yaml.NewEncoder(c.stdout)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return err
	}
	return enc.Close()
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
