package inventorysvc

import (
	"cmp"
	"errors"
	"io"
	"slices"

	"google.golang.org/grpc"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/services/edge"
)

// exportPage is how many entities one export chunk carries.
const exportPage = 1000

// ImportInventory implements treatyv1.InventoryServiceServer.
func (s *Service) ImportInventory(stream grpc.ClientStreamingServer[treatyv1.ImportInventoryRequest, treatyv1.ImportInventoryResponse]) error {
	var (
		first = true
		req   importRequest
	)
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if first {
			req.dryRun, req.actor, first = chunk.GetDryRun(), chunk.GetActor(), false
		}
		req.partners = append(req.partners, chunk.GetPartners()...)
		req.integrations = append(req.integrations, chunk.GetIntegrations()...)
		req.workloads = append(req.workloads, chunk.GetWorkloads()...)
		if err := validateImportSize(&req); err != nil {
			return edge.Status(s.log, err)
		}
	}
	if err := validateImport(&req); err != nil {
		return edge.Status(s.log, err)
	}
	in, edgeErrs := importFromProto(&req)
	res, err := s.reg.Import(stream.Context(), in, req.actor, req.dryRun || len(edgeErrs) > 0)
	if err != nil {
		return edge.Status(s.log, err)
	}
	errs := append(edgeErrs, res.Errors...)
	order := map[string]int{registry.ImportPartners: 0, registry.ImportIntegrations: 1, registry.ImportWorkloads: 2}
	slices.SortStableFunc(errs, func(a, b registry.ImportError) int {
		return cmp.Or(cmp.Compare(order[a.Kind], order[b.Kind]), cmp.Compare(a.Index, b.Index))
	})
	out := &treatyv1.ImportInventoryResponse{
		Committed: res.Committed && len(edgeErrs) == 0,
		Partners:  int32(len(req.partners)), Integrations: int32(len(req.integrations)), Workloads: int32(len(req.workloads)),
	}
	for _, e := range errs {
		out.Errors = append(out.Errors, &treatyv1.ImportError{Kind: e.Kind, Index: int32(e.Index), Field: e.Field, Message: e.Message})
	}
	return stream.SendAndClose(out)
}

// importRequest is an import's chunks put together.
type importRequest struct {
	dryRun       bool
	actor        string
	partners     []*treatyv1.Partner
	integrations []*treatyv1.Integration
	workloads    []*treatyv1.Workload
}

// ExportInventory implements treatyv1.InventoryServiceServer.
func (s *Service) ExportInventory(_ *treatyv1.ExportInventoryRequest, stream grpc.ServerStreamingServer[treatyv1.ExportInventoryResponse]) error {
	ctx := stream.Context()
	for token := ""; ; {
		ps, next, err := s.reg.ListPartners(ctx, exportPage, token)
		if err != nil {
			return edge.Status(s.log, err)
		}
		if len(ps) > 0 {
			chunk := &treatyv1.ExportInventoryResponse{Partners: make([]*treatyv1.Partner, len(ps))}
			for i, p := range ps {
				chunk.Partners[i] = partnerToProto(p)
			}
			if err := stream.Send(chunk); err != nil {
				return err
			}
		}
		if token = next; token == "" {
			break
		}
	}
	for token := ""; ; {
		is, next, err := s.reg.ListIntegrations(ctx, "", exportPage, token)
		if err != nil {
			return edge.Status(s.log, err)
		}
		if len(is) > 0 {
			chunk := &treatyv1.ExportInventoryResponse{Integrations: make([]*treatyv1.Integration, len(is))}
			for i, in := range is {
				chunk.Integrations[i] = integrationToProto(in)
			}
			if err := stream.Send(chunk); err != nil {
				return err
			}
		}
		if token = next; token == "" {
			break
		}
	}
	for token := ""; ; {
		ws, next, err := s.reg.ListWorkloads(ctx, "", exportPage, token)
		if err != nil {
			return edge.Status(s.log, err)
		}
		if len(ws) > 0 {
			chunk := &treatyv1.ExportInventoryResponse{Workloads: make([]*treatyv1.Workload, len(ws))}
			for i, w := range ws {
				chunk.Workloads[i] = workloadToProto(w)
			}
			if err := stream.Send(chunk); err != nil {
				return err
			}
		}
		if token = next; token == "" {
			return nil
		}
	}
}
