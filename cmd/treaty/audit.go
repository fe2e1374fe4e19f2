package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	bolt "go.etcd.io/bbolt"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/services/auditsvc"
)

// exitAuditBroken is the exit status of `audit verify` when the chain is broken, so that a
// scheduled check tells a broken trail (4) from a failure to check it (1).
const exitAuditBroken = 4

// The audit trail lives with the registry, so these commands talk to the registry's address.

func (c *cli) auditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read, export and prove the registry's hash-chained audit trail",
		Args:  args(0, ""),
	}
	cmd.AddCommand(c.auditListCmd(), c.auditExportCmd(), c.auditVerifyCmd())
	return cmd
}

func (c *cli) auditListCmd() *cobra.Command {
	var after uint64
	var target string
	var limit int
	cmd := &cobra.Command{
		Use:   "list [--after SEQ] [--target KIND/ID] [--limit N]",
		Short: "List audit records, oldest first: who changed what, when, why, and what changed",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return usagef("--limit must not be negative (0 lists every record)")
			}
			conn, err := c.conn("registry")
			if err != nil {
				return err
			}
			client := treatyv1.NewAuditServiceClient(conn)
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			req := &treatyv1.ListAuditRecordsRequest{AfterSequence: after, Target: target}
			var docs lines
			v := view{header: []string{"seq", "time", "actor", "action", "target", "reason", "changes", "hash"}}
			for n := 0; limit == 0 || n < limit; {
				req.PageSize = 1000
				if limit > 0 {
					req.PageSize = int32(min(limit-n, 1000))
				}
				resp, err := client.ListAuditRecords(ctx, req)
				if err != nil {
					return err
				}
				for _, m := range resp.GetRecords() {
					rec := auditsvc.RecordFromProto(m)
					docs = append(docs, rec)
					v.rows = append(v.rows, []string{strconv.FormatUint(rec.Sequence, 10), rec.Time.UTC().Format(time.RFC3339),
						rec.Actor, rec.Action, rec.Target, rec.Reason, changes(rec, c.output != outputCSV), rec.Hash})
				}
				n += len(resp.GetRecords())
				req.AfterSequence = 0
				if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
					break
				}
			}
			return c.render(docs, v, func() {
				rows := make([][]string, len(v.rows))
				for i, r := range v.rows {
					rows[i] = slices.Clone(r)
					rows[i][5] = orDash(r[5])
					rows[i][7] = r[7][:min(12, len(r[7]))]
				}
				table(c.stdout, []string{"SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "REASON", "CHANGES", "HASH"}, rows)
			})
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&after, "after", 0, "start after this sequence")
	f.StringVar(&target, "target", "", "only records about this entity, as kind/id (partner/acme, workload/bot)")
	f.IntVar(&limit, "limit", 100, "print at most N records (0 for all)")
	return recordFormats(cmd)
}

// changes summarises what a record changed: the fields whose values differ between before and
// after, or "created" for a record with nothing before; brief cuts it to fit a table.
func changes(rec registry.AuditRecord, brief bool) string {
	if len(rec.Before) == 0 {
		if len(rec.After) == 0 {
			return "-"
		}
		return "created"
	}
	var keys []string
	for k := range rec.Before {
		keys = append(keys, k)
	}
	for k := range rec.After {
		if _, ok := rec.Before[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		if b, a := rec.Before[k], rec.After[k]; a != b {
			out = append(out, fmt.Sprintf("%s: %s→%s", k, orDash(b), orDash(a)))
		}
	}
	if len(out) == 0 {
		return "-"
	}
	s := strings.Join(out, ", ")
	if r := []rune(s); brief && len(r) > 80 {
		s = string(r[:79]) + "…"
	}
	return s
}

func (c *cli) auditExportCmd() *cobra.Command {
	var after uint64
	var follow bool
	cmd := &cobra.Command{
		Use:   "export [--after SEQ] [--follow]",
		Short: "Write the audit trail as JSON lines for a SIEM, one record per line with its hash and previous hash",
		Long: `Write the audit trail to stdout as JSON lines, oldest first: one record per line, in the
form the registry stores and hashes, with "hash" and "prev_hash". Resume an export with
--after and the last sequence it wrote; --follow keeps writing new records as they are made,
until interrupted. Each line's hash can be recomputed from the line (see the canonical
encoding in registry/auditchain.go), and a SIEM that keeps the lines holds an anchor for
'treaty audit verify --anchor SEQ:HASH'.`,
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := c.conn("registry")
			if err != nil {
				return err
			}
			ctx := cmd.Context() // no timeout: an export runs as long as the trail, or for ever with --follow
			stream, err := treatyv1.NewAuditServiceClient(conn).ExportAudit(ctx, &treatyv1.ExportAuditRequest{AfterSequence: after, Follow: follow})
			if err != nil {
				return err
			}
			for {
				m, err := stream.Recv()
				if errors.Is(err, io.EOF) || ctx.Err() != nil {
					return nil
				}
				if err != nil {
					if after > 0 {
						fmt.Fprintf(c.stderr, "treaty: export stopped; resume with --after %d\n", after)
					}
					return err
				}
				if err := c.printJSON(auditsvc.RecordFromProto(m.GetRecord())); err != nil {
					return err
				}
				after = m.GetRecord().GetSequence()
			}
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&after, "after", 0, "start after this sequence (the last one a previous export wrote)")
	f.BoolVar(&follow, "follow", false, "keep the export open and write each new record as it is made")
	return withOutputs(cmd, outputJSON) // JSON lines, always: the SIEM's format
}

func (c *cli) auditVerifyCmd() *cobra.Command {
	var db, anchorFlag string
	cmd := &cobra.Command{
		Use:   "verify [--db FILE] [--anchor SEQ:HASH]",
		Short: "Prove the audit trail's hash chain is intact, or report its first broken record (exit status 4)",
		Long: `Walk the audit trail's hash chain from its genesis value and report the count and head
(sequence and hash) when it is intact, or the first broken record: changed (hash_mismatch),
deleted (gap), moved (sequence_mismatch), relinked (prev_mismatch) or unreadable
(undecodable). A broken chain exits with status 4.

Without --db the registry server verifies its own database. With --db, a copy of a registry
database is verified offline, opened read-only: a running server locks its file, so verify a
copy (stop the server and copy registry.db, or extract registry.db from 'treaty backup').

A chain alone cannot show that its newest records were cut off, or that someone rewrote the
whole chain; --anchor SEQ:HASH, a record kept outside the database (a SIEM's copy of an export,
an earlier verification's head), can: the chain must still hold it.`,
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			anchor, err := parseAnchor(anchorFlag)
			if err != nil {
				return err
			}
			var v registry.AuditVerification
			if db != "" {
				if v, err = verifyFile(db, anchor); err != nil {
					return err
				}
			} else {
				conn, err := c.conn("registry")
				if err != nil {
					return err
				}
				ctx, cancel := c.ctx(cmd)
				defer cancel()
				resp, err := treatyv1.NewAuditServiceClient(conn).VerifyAudit(ctx, &treatyv1.VerifyAuditRequest{
					AnchorSequence: anchor.Sequence, AnchorHash: anchor.Hash})
				if err != nil {
					return err
				}
				v = auditsvc.VerificationFromProto(resp)
			}
			if err := c.showVerification(v); err != nil {
				return err
			}
			if b := v.Broken; b != nil {
				return &exitErr{code: exitAuditBroken, err: fmt.Errorf("the audit trail is broken at record %d: %s", b.Sequence, b.Problem)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&db, "db", "", "verify this copy of a registry database offline instead of asking the server")
	f.StringVar(&anchorFlag, "anchor", "", "a record the chain must still hold, as SEQ:HASH (from an export or an earlier verify)")
	return recordFormats(cmd)
}

// parseAnchor reads --anchor SEQ:HASH.
func parseAnchor(s string) (registry.AuditAnchor, error) {
	if s == "" {
		return registry.AuditAnchor{}, nil
	}
	seqText, h, ok := strings.Cut(s, ":")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	raw, herr := hex.DecodeString(h)
	if !ok || err != nil || seq == 0 || herr != nil || len(raw) != 32 {
		return registry.AuditAnchor{}, usagef("--anchor must be SEQ:HASH, a sequence from 1 and a SHA-256 hash in hex, not %q", s)
	}
	return registry.AuditAnchor{Sequence: seq, Hash: strings.ToLower(h)}, nil
}

// verifyFile verifies the audit trail in a registry database file, opened read-only so that a
// copy kept as evidence is never changed (not even by the layout migration a server would run).
func verifyFile(path string, anchor registry.AuditAnchor) (registry.AuditVerification, error) {
	if _, err := os.Stat(path); err != nil {
		return registry.AuditVerification{}, usagef("--db: %v", err)
	}
	db, err := bolt.Open(path, 0, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return registry.AuditVerification{}, fmt.Errorf("open %s read-only: %w (a running server locks its database: verify a copy, or leave out --db to ask the server)", path, err)
	}
	defer db.Close()
	chain := registry.NewAuditChain(anchor)
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(registry.AuditBucket))
		if b == nil {
			return fmt.Errorf("%s is not a registry database: it has no %q bucket", path, registry.AuditBucket)
		}
		cur := b.Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			if !chain.Add(k, v) {
				break // the first broken record is the answer
			}
		}
		return nil
	})
	if err != nil {
		return registry.AuditVerification{}, err
	}
	return chain.Result(), nil
}

func (c *cli) showVerification(v registry.AuditVerification) error {
	status, row := "intact", []string{"", "", ""}
	if b := v.Broken; b != nil {
		status, row = "broken", []string{strconv.FormatUint(b.Sequence, 10), string(b.Problem), b.Detail}
	}
	return c.render(v, view{
		header: []string{"status", "records", "head_sequence", "head_hash", "broken_sequence", "problem", "detail"},
		rows:   [][]string{append([]string{status, strconv.FormatUint(v.Records, 10), strconv.FormatUint(v.HeadSequence, 10), v.HeadHash}, row...)},
	}, func() { c.showVerificationText(v) })
}

func (c *cli) showVerificationText(v registry.AuditVerification) {
	if b := v.Broken; b != nil {
		fields(c.stdout, "status", "BROKEN", "first broken record", strconv.FormatUint(b.Sequence, 10),
			"problem", string(b.Problem), "detail", b.Detail,
			"intact records", strconv.FormatUint(v.Records, 10), "last intact", fmt.Sprintf("%d %s", v.HeadSequence, v.HeadHash))
		return
	}
	fields(c.stdout, "status", "intact", "records", strconv.FormatUint(v.Records, 10),
		"head sequence", strconv.FormatUint(v.HeadSequence, 10), "head hash", v.HeadHash)
}
