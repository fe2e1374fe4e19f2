package authzen

import "net/http"

// metadataDocument is the PDP metadata (AuthZEN section 9): the identifier and every endpoint,
// under base.
func metadataDocument(base string) metadata {
	return metadata{
		PolicyDecisionPoint:       base,
		AccessEvaluationEndpoint:  base + PathEvaluation,
		AccessEvaluationsEndpoint: base + PathEvaluations,
		SearchSubjectEndpoint:     base + PathSearchSubject,
		SearchResourceEndpoint:    base + PathSearchResource,
		SearchActionEndpoint:      base + PathSearchAction,
	}
}

// serveMetadata answers GET /.well-known/authzen-configuration. The document only changes with
// the configuration, so clients may cache it for a while.
func (h *Handler) serveMetadata(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(h.metadata)
	}
}
