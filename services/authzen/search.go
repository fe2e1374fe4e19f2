package authzen

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/token"
)

// Page sizes of the search APIs.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// The search APIs answer from the enforcement state: a workload's current grants are the scope
// ceiling and audiences of its integration, while the workload, its integration and its partner
// are active, unblocked and inside the contract window. They list what an evaluation of that
// workload without a credential would be granted before policy conditions; the spec allows a
// search to differ from a later evaluation ("not guaranteed"), and policies only narrow. Searches
// reveal other workloads' grants, so only trusted callers may search, and a credential in
// subject.properties is ignored. Results are sorted; page tokens carry the last result returned,
// so a page never repeats one even while the state changes.

// searchKind names a search, binding page tokens to it.
type searchKind string

const (
	searchSubjects  searchKind = "subject"
	searchResources searchKind = "resource"
	searchActions   searchKind = "action"
)

// searchSubject lists the workloads that may perform the action on the resource.
func (h *Handler) searchSubject(w http.ResponseWriter, r *http.Request) {
	h.search(w, r, searchSubjects, func(in *searchRequest) error {
		return firstErr(typed(in.Subject, "subject", typeWorkload), checkAction(in.Action), resource(in.Resource, "resource", true))
	}, func(s *feed.State, in *searchRequest, now time.Time) ([]string, func(string) any) {
		var out []string
		for _, id := range h.workloadIDs(s) {
			if i := pdp.Grants(s, id, now); i != nil && i.AllowsScope(in.Action.Name) && i.AllowsAudience(in.Resource.ID) {
				out = append(out, id)
			}
		}
		return out, func(id string) any { return entityResult{Type: typeWorkload, ID: id} }
	})
}

// searchResource lists the audiences the workload may perform the action on.
func (h *Handler) searchResource(w http.ResponseWriter, r *http.Request) {
	h.search(w, r, searchResources, func(in *searchRequest) error {
		return firstErr(searchWorkload(in.Subject), checkAction(in.Action), resource(in.Resource, "resource", false))
	}, func(s *feed.State, in *searchRequest, now time.Time) ([]string, func(string) any) {
		var out []string
		if i := pdp.Grants(s, in.Subject.ID, now); i != nil && i.AllowsScope(in.Action.Name) {
			out = i.Audiences
		}
		return out, func(id string) any { return entityResult{Type: typeAPI, ID: id} }
	})
}

// searchAction lists the scopes the workload may perform on the resource.
func (h *Handler) searchAction(w http.ResponseWriter, r *http.Request) {
	h.search(w, r, searchActions, func(in *searchRequest) error {
		return firstErr(searchWorkload(in.Subject), resource(in.Resource, "resource", true))
	}, func(s *feed.State, in *searchRequest, now time.Time) ([]string, func(string) any) {
		var out []string
		if i := pdp.Grants(s, in.Subject.ID, now); i != nil && i.AllowsAudience(in.Resource.ID) {
			out = i.AllowedScopes
		}
		return out, func(name string) any { return actionResult{Name: name} }
	})
}

// search runs one search: validate, read the state (after min_sequence), find, and page.
func (h *Handler) search(w http.ResponseWriter, r *http.Request, kind searchKind, validate func(*searchRequest) error,
	find func(*feed.State, *searchRequest, time.Time) ([]string, func(string) any)) {
	var in searchRequest
	if err := h.decode(w, r, &in); err != nil {
		h.fault(w, r, err)
		return
	}
	if !h.trusted(r) {
		writeError(w, http.StatusForbidden, "the search APIs list workloads' grants: only a trusted caller may search")
		return
	}
	if err := validate(&in); err != nil {
		h.fault(w, r, err)
		return
	}
	_, minSeq, err := requestContextOf(in.Context, "context")
	if err != nil {
		h.fault(w, r, err)
		return
	}
	limit, after, err := page(in.Page, fingerprint(kind, &in))
	if err != nil {
		h.fault(w, r, err)
		return
	}
	s, err := h.pdp.StateAt(r.Context(), minSeq)
	if err != nil {
		h.fault(w, r, err)
		return
	}
	out := searchResponse{Context: &searchContext{Sequence: s.Sequence()}, Results: []any{}}
	switch st := h.pdp.Status(); st {
	case pdp.StatusReady:
	case pdp.StatusStale:
		// Fail closed like a decision would: a state known to be behind grants nothing.
		out.Context.Reasons = []string{pdp.ReasonStale}
		writeJSON(w, http.StatusOK, out)
		return
	default:
		out.Context.Reasons = []string{pdp.ReasonSyncing}
		writeJSON(w, http.StatusOK, out)
		return
	}

	found, result := find(s, &in, h.now())
	found = sortedUnique(found)
	start := sort.SearchStrings(found, after)
	if after != "" && start < len(found) && found[start] == after {
		start++
	}
	end := min(start+limit, len(found))
	for _, v := range found[start:end] {
		out.Results = append(out.Results, result(v))
	}
	out.Page = pageResponse{Count: end - start, Total: len(found)}
	if end < len(found) {
		out.Page.NextToken = pageToken(fingerprint(kind, &in), found[end-1])
	}
	writeJSON(w, http.StatusOK, out)
}

// workloadIndex is the sorted ids of every workload of one state.
type workloadIndex struct {
	state *feed.State
	ids   []string
}

// workloadIDs returns the ids of every workload in s, sorted: built once per state and kept until
// the next search on a newer one.
func (h *Handler) workloadIDs(s *feed.State) []string {
	if idx := h.subjects.Load(); idx != nil && idx.state == s {
		return idx.ids
	}
	_, _, n, _, _ := s.Counts()
	ids := make([]string, 0, n)
	s.EachWorkload(func(w *feed.Workload) bool {
		ids = append(ids, w.ID)
		return true
	})
	slices.Sort(ids)
	h.subjects.Store(&workloadIndex{state: s, ids: ids})
	return ids
}

// searchWorkload checks the subject of a resource or action search: a workload, named.
func searchWorkload(s *entity) error {
	if err := typed(s, "subject", typeWorkload); err != nil {
		return err
	}
	if !fail.ValidID(s.ID) {
		return invalid("subject.id must be a workload id: 1-63 lower-case letters, digits and dashes, starting with a letter or digit")
	}
	return nil
}

func checkAction(a *action) error {
	switch {
	case a == nil:
		return invalid("action is required")
	case !token.ValidScope(a.Name):
		return invalid("action.name must be a scope name: 1-%d printable ASCII characters without spaces, quotes or backslashes", token.MaxScopeLen)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func sortedUnique(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// fingerprint identifies a search's query and page size, so that a page token is honoured only
// for the search it came from, as the spec asks.
func fingerprint(kind searchKind, in *searchRequest) []byte {
	h := sha256.New()
	put := func(s string) { h.Write([]byte(s)); h.Write([]byte{0}) }
	put(string(kind))
	if kind != searchSubjects && in.Subject != nil {
		put(in.Subject.ID)
	}
	if kind != searchActions && in.Action != nil {
		put(in.Action.Name)
	}
	if kind != searchResources && in.Resource != nil {
		put(in.Resource.ID)
	}
	if in.Page != nil && in.Page.Limit != nil {
		put(in.Page.Limit.String())
	}
	return h.Sum(nil)[:8]
}

// pageToken is the opaque next_token: the query's fingerprint and the last result returned.
func pageToken(fp []byte, last string) string {
	return base64.RawURLEncoding.EncodeToString(append(slices.Clone(fp), last...))
}

// page reads a search's page request: the limit, and the last result of the previous page.
func page(p *pageRequest, fp []byte) (limit int, after string, err error) {
	limit = DefaultPageLimit
	if p == nil {
		return limit, "", nil
	}
	if p.Limit != nil {
		n, perr := strconv.ParseUint(p.Limit.String(), 10, 32)
		if perr != nil || n > MaxPageLimit {
			return 0, "", invalid("page.limit must be an integer from 0 to %d (0 or absent: %d)", MaxPageLimit, DefaultPageLimit)
		}
		if n > 0 {
			limit = int(n)
		}
	}
	if p.Token == nil || *p.Token == "" {
		return limit, "", nil
	}
	raw, derr := base64.RawURLEncoding.DecodeString(*p.Token)
	if derr != nil || len(raw) <= len(fp) || !bytes.Equal(raw[:len(fp)], fp) {
		return 0, "", invalid("page.token is not a next_token of this search: send the same subject, action, resource and " +
			"page.limit as the request that returned it, or start again without a token")
	}
	return limit, string(raw[len(fp):]), nil
}
