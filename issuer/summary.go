package issuer

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// DefaultSummaryWindow is the usage window of Summarize when the caller names none.
const DefaultSummaryWindow = 30 * 24 * time.Hour

// MaxSummaryExamined bounds the credentials one Summarize reads; beyond it the answer is marked
// truncated, so a huge inventory cannot make one report scan without end.
const MaxSummaryExamined = 2_000_000

// maxBindingThumbprints bounds the thumbprints kept per workload.
const maxBindingThumbprints = 8

// WorkloadSummary aggregates one workload's credentials over a usage window.
type WorkloadSummary struct {
	WorkloadID, IntegrationID, PartnerID string
	// Live counts its unexpired credentials; LiveBearer those bound to nothing.
	Live, LiveBearer uint64
	// OldestLiveIssued and OldestLiveID name its oldest live credential; zero if none is live.
	OldestLiveIssued time.Time
	OldestLiveID     string
	// LastIssued is its newest issuance in the window; LastSeen the last time a PDP allowed one
	// of its credentials in the window. Zero if none.
	LastIssued, LastSeen time.Time
	// ScopesSeen are the scopes of its credentials a PDP allowed in the window, sorted.
	ScopesSeen []string
	// AuthMethods are the client authentication methods of its issuances in the window, sorted.
	AuthMethods []string
	// BindingThumbprints are up to 8 distinct thumbprints its credentials issued in the window
	// were bound to, sorted.
	BindingThumbprints []string
}

// Summary is the inventory aggregated per workload.
type Summary struct {
	// Since is the start of the window.
	Since time.Time
	// Workloads holds one entry per workload with a credential live now, or issued or seen in the
	// window, by workload id.
	Workloads []WorkloadSummary
	// Truncated is set when MaxSummaryExamined credentials were read before the window's start.
	Truncated bool
}

// Summarize aggregates the inventory per workload over the window that starts at since (zero
// means DefaultSummaryWindow ago), for posture findings.
//
// It reads credentials newest first and stops at those issued before since minus the maximum
// credential lifetime (and a margin): such a credential expired before the window began, so a PDP
// cannot have allowed it in the window, and it is not live.
func (i *Issuer) Summarize(since time.Time) (Summary, error) {
	now := i.cfg.Now()
	switch {
	case since.IsZero():
		since = now.Add(-DefaultSummaryWindow)
	case since.After(now):
		return Summary{}, fail.Invalidf("since_time", "since_time must not be in the future")
	}
	cutoff := since.Add(-i.cfg.MaxCredentialTTL - liveMargin)
	type agg struct {
		WorkloadSummary
		scopes, methods, thumbs map[string]bool
	}
	byWorkload := map[string]*agg{}
	get := func(rec *credentialRecord) *agg {
		a := byWorkload[rec.WorkloadID]
		if a == nil {
			a = &agg{
				WorkloadSummary: WorkloadSummary{WorkloadID: rec.WorkloadID, IntegrationID: rec.IntegrationID, PartnerID: rec.PartnerID},
				scopes:          map[string]bool{}, methods: map[string]bool{}, thumbs: map[string]bool{},
			}
			byWorkload[rec.WorkloadID] = a
		}
		return a
	}
	out := Summary{Since: since}
	err := i.cfg.Store.View(func(tx store.Tx) error {
		examined := 0
		return tx.Scan(bucketByOrder, nil, nil, func(_, jti []byte) (bool, error) {
			if examined++; examined > MaxSummaryExamined {
				out.Truncated = true
				return false, nil
			}
			rec, err := indexedRecord(tx, jti)
			if err != nil {
				return false, err
			}
			if rec.IssueTime.Before(cutoff) {
				return false, nil // everything older expired before the window
			}
			live, issued := rec.ExpireTime.After(now), !rec.IssueTime.Before(since)
			seen := lastSeen(tx, jti)
			used := !seen.IsZero() && !seen.Before(since)
			if !live && !issued && !used {
				return true, nil
			}
			a := get(rec)
			if live {
				a.Live++
				if rec.Binding == "" || rec.Binding == BindingNone {
					a.LiveBearer++
				}
				if a.OldestLiveIssued.IsZero() || rec.IssueTime.Before(a.OldestLiveIssued) {
					a.OldestLiveIssued, a.OldestLiveID = rec.IssueTime, rec.ID
				}
			}
			if issued {
				if rec.IssueTime.After(a.LastIssued) {
					a.LastIssued = rec.IssueTime
				}
				if rec.AuthMethod != "" {
					a.methods[rec.AuthMethod] = true
				}
				if rec.BindingThumbprint != "" && len(a.thumbs) < maxBindingThumbprints {
					a.thumbs[rec.BindingThumbprint] = true
				}
			}
			if used {
				if seen.After(a.LastSeen) {
					a.LastSeen = seen
				}
				for _, s := range rec.Scopes {
					a.scopes[s] = true
				}
			}
			return true, nil
		})
	})
	if err != nil {
		return Summary{}, fmt.Errorf("issuer: summarize the inventory: %w", err)
	}
	keys := func(m map[string]bool) []string {
		if len(m) == 0 {
			return nil
		}
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	out.Workloads = make([]WorkloadSummary, 0, len(byWorkload))
	for _, a := range byWorkload {
		s := a.WorkloadSummary
		s.ScopesSeen, s.AuthMethods, s.BindingThumbprints = keys(a.scopes), keys(a.methods), keys(a.thumbs)
		out.Workloads = append(out.Workloads, s)
	}
	slices.SortFunc(out.Workloads, func(a, b WorkloadSummary) int { return cmp.Compare(a.WorkloadID, b.WorkloadID) })
	return out, nil
}
