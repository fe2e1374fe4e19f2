package authzen

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/treaty-dev/treaty/pdp"
)

// evaluation answers one access evaluation (POST /access/v1/evaluation).
func (h *Handler) evaluation(w http.ResponseWriter, r *http.Request) {
	var in evaluationRequest
	if err := h.decode(w, r, &in); err != nil {
		h.fault(w, r, err)
		return
	}
	h.evaluateOne(w, r, &in)
}

func (h *Handler) evaluateOne(w http.ResponseWriter, r *http.Request, in *evaluationRequest) {
	req, err := checkRequest(in, "", h.trusted(r), recordedID(r))
	if err != nil {
		h.fault(w, r, err)
		return
	}
	d, err := h.pdp.Check(r.Context(), req)
	if err != nil {
		h.fault(w, r, err)
		return
	}
	out := decisionOf(d)
	h.logDeny(r, &req, out)
	writeJSON(w, http.StatusOK, out)
}

// semantics maps options.evaluations_semantic to the PDP's batch semantics.
var semantics = map[string]pdp.BatchSemantics{
	"execute_all":            pdp.ExecuteAll,
	"deny_on_first_deny":     pdp.DenyOnFirstDeny,
	"permit_on_first_permit": pdp.PermitOnFirstPermit,
}

// evaluations answers a batch (POST /access/v1/evaluations). The top-level subject, action,
// resource and context are defaults that each evaluation's own member replaces whole. Without
// evaluations the request is a single evaluation and gets a single decision, as the spec says.
// Every evaluation is decided on one state, in order, stopping where the semantic says.
func (h *Handler) evaluations(w http.ResponseWriter, r *http.Request) {
	var in evaluationsRequest
	if err := h.decode(w, r, &in); err != nil {
		h.fault(w, r, err)
		return
	}
	sem := pdp.ExecuteAll
	if in.Options != nil && in.Options.EvaluationsSemantic != nil {
		s, ok := semantics[*in.Options.EvaluationsSemantic]
		if !ok {
			h.fault(w, r, invalid("options.evaluations_semantic %q is not known: use execute_all, deny_on_first_deny or permit_on_first_permit",
				*in.Options.EvaluationsSemantic))
			return
		}
		sem = s
	}
	if len(in.Evaluations) == 0 {
		h.evaluateOne(w, r, &in.evaluationRequest)
		return
	}
	if n := len(in.Evaluations); n > pdp.MaxBatch {
		h.fault(w, r, invalid("evaluations holds %d evaluations; at most %d are allowed in one request: split it", n, pdp.MaxBatch))
		return
	}

	trusted, rid := h.trusted(r), recordedID(r)
	reqs := make([]pdp.CheckRequest, len(in.Evaluations))
	var minSeq uint64
	for i := range in.Evaluations {
		ev := withDefaults(in.Evaluations[i], &in.evaluationRequest)
		req, err := checkRequest(&ev, fmt.Sprintf("evaluations[%d].", i), trusted, rid)
		if err != nil {
			h.fault(w, r, err)
			return
		}
		reqs[i] = req
		minSeq = max(minSeq, req.MinSequence)
	}
	ds, err := h.pdp.CheckBatch(r.Context(), reqs, sem, minSeq)
	if err != nil {
		h.fault(w, r, err)
		return
	}
	out := evaluationsResponse{Evaluations: make([]decision, len(ds))}
	for i, d := range ds {
		out.Evaluations[i] = decisionOf(d)
		h.logDeny(r, &reqs[i], out.Evaluations[i])
	}
	writeJSON(w, http.StatusOK, out)
}

// withDefaults fills an evaluation's absent members from the top-level defaults.
func withDefaults(ev evaluationRequest, defaults *evaluationRequest) evaluationRequest {
	if ev.Subject == nil {
		ev.Subject = defaults.Subject
	}
	if ev.Action == nil {
		ev.Action = defaults.Action
	}
	if ev.Resource == nil {
		ev.Resource = defaults.Resource
	}
	if ev.Context == nil {
		ev.Context = defaults.Context
	}
	return ev
}

// logDeny logs a deny at debug level: the decision log keeps the audit trail, this is for
// operators following one request. Never the token.
func (h *Handler) logDeny(r *http.Request, req *pdp.CheckRequest, d decision) {
	if d.Decision || !h.log.Enabled(r.Context(), slog.LevelDebug) {
		return
	}
	h.log.Debug("evaluation denied", "request_id", req.RequestID, "workload", req.WorkloadID, "action", req.Action,
		"resource", req.Resource, "reasons", d.Context.Reasons, "decision_id", d.Context.DecisionID)
}
