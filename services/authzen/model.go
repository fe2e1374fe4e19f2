package authzen

import "encoding/json"

// The JSON shapes of the API (AuthZEN 1.0, sections 5 to 8). Unknown members are ignored, as the
// spec requires; pointers tell an absent member from an empty one.

// entity is a subject or a resource.
type entity struct {
	Type       string         `json:"type"`
	ID         string         `json:"id"`
	Properties map[string]any `json:"properties,omitempty"`
}

type action struct {
	Name       string         `json:"name"`
	Properties map[string]any `json:"properties,omitempty"`
}

// requestContext is the context members Treaty uses; others are ignored.
type requestContext struct {
	SourceIP    *string      `json:"source_ip"`
	Environment *string      `json:"environment"`
	MinSequence *json.Number `json:"min_sequence"`
}

// evaluationRequest is an access evaluation, and each item of a batch.
type evaluationRequest struct {
	Subject  *entity         `json:"subject"`
	Action   *action         `json:"action"`
	Resource *entity         `json:"resource"`
	Context  *requestContext `json:"context"`
}

// evaluationsRequest is a batch: top-level members are defaults for each evaluation.
type evaluationsRequest struct {
	evaluationRequest
	Evaluations []evaluationRequest `json:"evaluations"`
	Options     *struct {
		EvaluationsSemantic *string `json:"evaluations_semantic"`
	} `json:"options"`
}

// decision is the answer to one evaluation.
type decision struct {
	Decision bool             `json:"decision"`
	Context  *decisionContext `json:"context,omitempty"`
}

// decisionContext explains a decision: which check allowed or denied, the decision's id in the
// audit trail, and the feed sequence of the state it was made on.
type decisionContext struct {
	Reasons    []string `json:"reasons"`
	DecisionID string   `json:"decision_id,omitempty"`
	Sequence   uint64   `json:"sequence"`
	PolicyID   string   `json:"policy_id,omitempty"`
}

type evaluationsResponse struct {
	Evaluations []decision `json:"evaluations"`
}

// searchRequest is any of the three searches; which members are required depends on the search.
type searchRequest struct {
	evaluationRequest
	Page *pageRequest `json:"page"`
}

type pageRequest struct {
	Token *string      `json:"token"`
	Limit *json.Number `json:"limit"`
}

// searchResponse lists results of the searched type. Page comes first, as the spec recommends.
type searchResponse struct {
	Page    pageResponse   `json:"page"`
	Context *searchContext `json:"context,omitempty"`
	Results []any          `json:"results"`
}

type pageResponse struct {
	NextToken string `json:"next_token"`
	Count     int    `json:"count"`
	Total     int    `json:"total"`
}

// searchContext says which state a search answered from, and why it found nothing when the PDP
// is not ready.
type searchContext struct {
	Sequence uint64   `json:"sequence"`
	Reasons  []string `json:"reasons,omitempty"`
}

type actionResult struct {
	Name string `json:"name"`
}

type entityResult struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// metadata is the PDP metadata document (section 9).
type metadata struct {
	PolicyDecisionPoint       string `json:"policy_decision_point"`
	AccessEvaluationEndpoint  string `json:"access_evaluation_endpoint"`
	AccessEvaluationsEndpoint string `json:"access_evaluations_endpoint"`
	SearchSubjectEndpoint     string `json:"search_subject_endpoint"`
	SearchResourceEndpoint    string `json:"search_resource_endpoint"`
	SearchActionEndpoint      string `json:"search_action_endpoint"`
}
