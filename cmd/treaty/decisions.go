package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// The decision log lives with the PDP, so these commands talk to the pdp service's address.

func (c *cli) decisionsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "decisions",
		Short: "Read the PDP's decision log: follow it live, or query it by subject and time",
		Args:  args(0, ""),
	}
	cmd.AddCommand(c.decisionsTailCmd(), c.decisionsListCmd())
	return cmd
}

func (c *cli) decisionsTailCmd() *cobra.Command {
	var backlog int32
	cmd := &cobra.Command{
		Use:   "tail [--backlog N]",
		Short: "Follow the decision log: the last N decisions, then each one as it is logged",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if backlog < 0 || backlog > 1000 {
				return usagef("--backlog must be between 0 and 1000, not %d", backlog)
			}
			conn, err := c.conn("pdp")
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			stream, err := treatyv1.NewDecisionLogServiceClient(conn).TailDecisions(ctx, &treatyv1.TailDecisionsRequest{Backlog: backlog})
			if err != nil {
				return err
			}
			for {
				m, err := stream.Recv()
				if errors.Is(err, io.EOF) || ctx.Err() != nil {
					return nil
				}
				if err != nil {
					return err
				}
				if err := c.printDecision(m.GetDecision()); err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().Int32Var(&backlog, "backlog", 0, "print the last N logged decisions first (at most 1000)")
	return cmd
}

func (c *cli) decisionsListCmd() *cobra.Command {
	var subject, since, until string
	var limit int
	cmd := &cobra.Command{
		Use:   "list [--subject WORKLOAD] [--since TIME|DURATION] [--until TIME] [--limit N]",
		Short: "List logged decisions, oldest first, by subject and time range",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if subject != "" {
				if err := checkIDArg("workload", subject); err != nil {
					return err
				}
			}
			if limit < 0 {
				return usagef("--limit must not be negative (0 lists every match)")
			}
			now := time.Now()
			req := &treatyv1.ListDecisionsRequest{Subject: subject}
			if since != "" {
				t, err := parseWhen(since, now)
				if err != nil {
					return usagef("--since: %v", err)
				}
				req.StartTime = timestamppb.New(t)
			}
			if until != "" {
				t, err := parseWhen(until, now)
				if err != nil {
					return usagef("--until: %v", err)
				}
				req.EndTime = timestamppb.New(t)
			}
			if req.StartTime != nil && req.EndTime != nil && req.EndTime.AsTime().Before(req.StartTime.AsTime()) {
				return usagef("--until is before --since")
			}
			conn, err := c.conn("pdp")
			if err != nil {
				return err
			}
			client := treatyv1.NewDecisionLogServiceClient(conn)
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			var (
				sampledOut uint64
				docs       lines
				v          = view{header: decisionColumns}
			)
			for n := 0; limit == 0 || n < limit; {
				req.PageSize = 1000
				if limit > 0 {
					req.PageSize = int32(min(limit-n, 1000))
				}
				resp, err := client.ListDecisions(ctx, req)
				if err != nil {
					return err
				}
				for _, d := range resp.GetDecisions() {
					docs = append(docs, d)
					v.rows = append(v.rows, decisionRow(d))
				}
				n += len(resp.GetDecisions())
				sampledOut = resp.GetSampledOut()
				if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
					break
				}
			}
			err = c.render(docs, v, func() {
				for _, d := range docs {
					c.printDecision(d.(*treatyv1.DecisionRecord))
				}
			})
			if err != nil {
				return err
			}
			if sampledOut > 0 {
				fmt.Fprintf(c.stderr, "treaty: the log left out %d decisions since the PDP started (allows sampled out, capped or shed; denies unlogged after --decision-log-max-deny-wait)\n", sampledOut)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&subject, "subject", "", "only decisions about this workload")
	f.StringVar(&since, "since", "", "only decisions at or after this time (RFC 3339 like 2026-03-01T12:00:00Z, or a date) or this long ago (15m, 2h)")
	f.StringVar(&until, "until", "", "only decisions before this time (RFC 3339, or a date) or this long ago")
	f.IntVar(&limit, "limit", 100, "print at most N decisions (0 for every match)")
	return recordFormats(cmd)
}

// parseWhen reads a time as RFC 3339, or as a duration before now. A date alone (YYYY-MM-DD) is
// midnight UTC of that day.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q: a duration counts back from now and must not be negative", s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a time (2026-03-01T12:00:00Z, 2026-03-01) nor a duration (15m, 2h)", s)
}

// printDecision prints one logged decision on one line: text for people, JSON lines with -o json.
func (c *cli) printDecision(d *treatyv1.DecisionRecord) error {
	if c.output == "json" {
		raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(d)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(c.stdout, string(raw))
		return err
	}
	verdict := "deny"
	if d.GetDecision() == treatyv1.Decision_DECISION_ALLOW {
		verdict = "allow"
	}
	line := []string{
		d.GetTime().AsTime().UTC().Format("2006-01-02T15:04:05.000Z"), verdict, orDash(d.GetSubject()),
		orDash(d.GetAction()), orDash(d.GetResource()), orDash(strings.Join(d.GetReasons(), ",")),
		"partner=" + orDash(d.GetPartnerId()), fmt.Sprintf("seq=%d", d.GetSequence()),
		"latency=" + d.GetLatency().AsDuration().String(), "id=" + d.GetDecisionId(),
	}
	if r := d.GetRequestId(); r != "" {
		line = append(line, "request="+r)
	}
	if j := d.GetCredentialId(); j != "" {
		line = append(line, "credential="+j)
	}
	if p := d.GetPolicyId(); p != "" {
		line = append(line, "policy="+p)
	}
	_, err := fmt.Fprintln(c.stdout, strings.Join(line, "\t"))
	return err
}

// decisionColumns are a logged decision's columns for -o csv.
var decisionColumns = []string{"time", "decision", "subject", "action", "resource", "reasons", "partner", "sequence", "latency",
	"decision_id", "request_id", "credential_id", "policy_id"}

func decisionRow(d *treatyv1.DecisionRecord) []string {
	return []string{d.GetTime().AsTime().UTC().Format(time.RFC3339Nano), decisionWord(d.GetDecision() == treatyv1.Decision_DECISION_ALLOW),
		d.GetSubject(), d.GetAction(), d.GetResource(), strings.Join(d.GetReasons(), " "), d.GetPartnerId(), fmt.Sprint(d.GetSequence()),
		d.GetLatency().AsDuration().String(), d.GetDecisionId(), d.GetRequestId(), d.GetCredentialId(), d.GetPolicyId()}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
