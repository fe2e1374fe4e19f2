package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// importChunk is how many items one message of an import carries.
const importChunk = 250

func (c *cli) importCmd() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "import FILE [--dry-run]",
		Short: "Import partners, integrations and workloads from a YAML or JSON file, all or nothing",
		Long: `Import creates the partners, integrations and workloads listed in FILE (YAML or JSON; "-" reads
stdin) in one transaction: all of them, or none if any item fails. The file has three lists,
partners, integrations and workloads, whose items use the API's field names (as 'treaty export'
writes them). Every error is listed with its line. --dry-run checks everything on the server and
writes nothing.

Partners are imported PARTNER_STATE_PROPOSED unless their state says PARTNER_STATE_APPROVED or
PARTNER_STATE_ACTIVE, which need approved_by; integrations likewise (INTEGRATION_STATE_...).`,
		Args: args(1, "FILE"),
		RunE: func(cmd *cobra.Command, a []string) error {
			data, err := readInput(c, a[0])
			if err != nil {
				return err
			}
			f, errs := parseInventory(data)
			if len(errs) > 0 {
				return c.fileErrors(a[0], errs, "nothing was sent")
			}
			resp, err := c.sendImport(cmd, f, dryRun)
			if err != nil {
				return err
			}
			for _, e := range resp.GetErrors() {
				errs = append(errs, fileError{
					Line: f.line(e.GetKind(), int(e.GetIndex())), Kind: e.GetKind(), Index: int(e.GetIndex()),
					ID: itemID(f, e.GetKind(), int(e.GetIndex())), Field: e.GetField(), Message: e.GetMessage(),
				})
			}
			if len(errs) > 0 {
				return c.fileErrors(a[0], errs, "nothing was written")
			}
			if c.output == "json" {
				return c.printProto(resp)
			}
			verb := "imported"
			if dryRun {
				verb = "valid (dry run, nothing written):"
			}
			fmt.Fprintf(c.stdout, "%s %d partners, %d integrations, %d workloads\n", verb, resp.GetPartners(), resp.GetIntegrations(), resp.GetWorkloads())
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate everything on the server, write nothing")
	return cmd
}

func readInput(c *cli, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(c.stdin)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return data, nil
}

// sendImport streams the file's items to the InventoryService in chunks, with a progress bar.
func (c *cli) sendImport(cmd *cobra.Command, f *inventoryFile, dryRun bool) (*treatyv1.ImportInventoryResponse, error) {
	conn, err := c.conn("registry")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), max(c.timeout, 5*time.Minute))
	defer cancel()
	stream, err := treatyv1.NewInventoryServiceClient(conn).ImportInventory(ctx)
	if err != nil {
		return nil, err
	}
	bar := c.newProgress(int64(f.items()), "importing")
	first := true
	next := func() *treatyv1.ImportInventoryRequest {
		req := &treatyv1.ImportInventoryRequest{}
		if first {
			req.DryRun, req.Actor, first = dryRun, c.actor, false
		}
		return req
	}
	send := func(req *treatyv1.ImportInventoryRequest, n int) error {
		if err := stream.Send(req); err != nil {
			bar.stop()
			return err
		}
		bar.add(n)
		return nil
	}
	for i := 0; i < len(f.partners); i += importChunk {
		req := next()
		req.Partners = f.partners[i:min(i+importChunk, len(f.partners))]
		if err := send(req, len(req.Partners)); err != nil {
			return nil, closeStream(stream, err)
		}
	}
	for i := 0; i < len(f.integrations); i += importChunk {
		req := next()
		req.Integrations = f.integrations[i:min(i+importChunk, len(f.integrations))]
		if err := send(req, len(req.Integrations)); err != nil {
			return nil, closeStream(stream, err)
		}
	}
	for i := 0; i < len(f.workloads); i += importChunk {
		req := next()
		req.Workloads = f.workloads[i:min(i+importChunk, len(f.workloads))]
		if err := send(req, len(req.Workloads)); err != nil {
			return nil, closeStream(stream, err)
		}
	}
	if first { // an empty file still asks the server, for a dry run's sake
		if err := stream.Send(next()); err != nil {
			return nil, closeStream(stream, err)
		}
	}
	bar.finish()
	return stream.CloseAndRecv()
}

// closeStream returns the server's status after a failed send (io.EOF means the server ended
// the stream and its status says why).
func closeStream(stream interface {
	CloseAndRecv() (*treatyv1.ImportInventoryResponse, error)
}, err error) error {
	if errors.Is(err, io.EOF) {
		_, err = stream.CloseAndRecv()
	}
	return err
}

func itemID(f *inventoryFile, kind string, i int) string {
	switch {
	case kind == "partners" && i < len(f.partners):
		return f.partners[i].GetId()
	case kind == "integrations" && i < len(f.integrations):
		return f.integrations[i].GetId()
	case kind == "workloads" && i < len(f.workloads):
		return f.workloads[i].GetId()
	}
	return ""
}

// fileErrors prints every error of an inventory file, "FILE:LINE: ...", or as JSON with -o json,
// and returns the command's failure.
func (c *cli) fileErrors(name string, errs []fileError, outcome string) error {
	if c.output == "json" {
		if err := c.printJSON(map[string]any{"errors": errs}); err != nil {
			return err
		}
	} else {
		for _, e := range errs {
			fmt.Fprintf(c.stderr, "%s:%s\n", name, e)
		}
	}
	return &exitErr{code: exitError, err: fmt.Errorf("%s: %d errors; %s", name, len(errs), outcome)}
}

func (c *cli) exportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "export [-o yaml|json]",
		Short: "Export every partner, integration and workload as YAML (the default) or JSON, in the import's format",
		Args:  args(0, ""),
		// YAML by default: an export is for files, not for reading in a terminal.
		Annotations: map[string]string{outputsAnnotation: "yaml,json"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := c.conn("registry")
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), max(c.timeout, 5*time.Minute))
			defer cancel()
			stream, err := treatyv1.NewInventoryServiceClient(conn).ExportInventory(ctx, &treatyv1.ExportInventoryRequest{})
			if err != nil {
				return err
			}
			all := &treatyv1.ExportInventoryResponse{}
			for {
				chunk, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return err
				}
				all.Partners = append(all.Partners, chunk.GetPartners()...)
				all.Integrations = append(all.Integrations, chunk.GetIntegrations()...)
				all.Workloads = append(all.Workloads, chunk.GetWorkloads()...)
			}
			raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(all)
			if err != nil {
				return err
			}
			if c.output == "json" {
				// Indented by encoding/json: protojson varies its spacing on purpose.
				var out bytes.Buffer
				if err := json.Indent(&out, raw, "", "  "); err != nil {
					return err
				}
				out.WriteByte('\n')
				_, err = c.stdout.Write(out.Bytes())
				return err
			}
			return writeYAML(c.stdout, raw)
		},
	}
}
