package registry

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// Filtered lists. A filter is applied while scanning in id order, so a page holds up to page size
// matching entities and the next page starts after the last one returned. A page token names its
// filter (key), so it cannot be replayed with another filter and silently skip or repeat entries,
// and a page is only followed by a token when another match exists: the last page never promises
// more.

// PartnerFilter selects partners; zero fields select everything. Fields combine (AND).
type PartnerFilter struct {
	// State, if set, selects partners in this state.
	State treatyv1.PartnerState
	// Owner, if set, selects partners whose owner team, accountable owner or backup owner is this
	// (case-insensitive).
	Owner string
	// RiskTier, if set, selects partners of this tier.
	RiskTier treatyv1.RiskTier
	// ContractEndBefore, if set, selects partners whose contract ends before it.
	ContractEndBefore time.Time
}

// key renders the filter canonically, for page tokens.
func (f PartnerFilter) key() string {
	var parts []string
	if f.State != 0 {
		parts = append(parts, "state="+strconv.Itoa(int(f.State)))
	}
	if f.Owner != "" {
		parts = append(parts, "owner="+strings.ToLower(f.Owner))
	}
	if f.RiskTier != 0 {
		parts = append(parts, "tier="+strconv.Itoa(int(f.RiskTier)))
	}
	if !f.ContractEndBefore.IsZero() {
		parts = append(parts, "end<"+f.ContractEndBefore.UTC().Format(time.RFC3339Nano))
	}
	return strings.Join(parts, ";")
}

func (f PartnerFilter) check() error {
	if _, ok := treatyv1.PartnerState_name[int32(f.State)]; !ok {
		return fail.Invalidf("state", "state must be a partner state")
	}
	if f.Owner != "" {
		if err := CheckName("owner", f.Owner); err != nil {
			return err
		}
	}
	if _, ok := treatyv1.RiskTier_name[int32(f.RiskTier)]; !ok {
		return fail.Invalidf("risk_tier", "risk_tier must be low, medium, high or critical")
	}
	return nil
}

func (f PartnerFilter) match(rec *partnerRecord) bool {
	switch {
	case f.State != 0 && rec.State != f.State:
		return false
	case f.Owner != "" && !strings.EqualFold(rec.OwnerTeam, f.Owner) && !strings.EqualFold(rec.AccountableOwner, f.Owner) &&
		!strings.EqualFold(rec.BackupOwner, f.Owner):
		return false
	case f.RiskTier != 0 && tierOrDefault(rec.RiskTier) != f.RiskTier:
		return false
	case !f.ContractEndBefore.IsZero() && !rec.ContractEnd.Before(f.ContractEndBefore):
		return false
	}
	return true
}

// ListPartnersBy returns one page of the partners filter selects, in id order, and the token of the
// next page ("" on the last). Page sizes are as for ListPartners.
func (r *Registry) ListPartnersBy(ctx context.Context, filter PartnerFilter, pageSize int, pageToken string) ([]Partner, string, error) {
	if err := filter.check(); err != nil {
		return nil, "", err
	}
	return listWhere(r.cfg.Store, partners, "", filter.key(), pageSize, pageToken, filter.match, (*partnerRecord).partner)
}

// IntegrationFilter selects integrations; zero fields select everything. Fields combine (AND).
type IntegrationFilter struct {
	// PartnerID, if set, selects the integrations of this partner.
	PartnerID string
	// State, if set, selects integrations in this state.
	State treatyv1.IntegrationState
	// Owner, if set, selects integrations with this owner (case-insensitive).
	Owner string
	// Environment, if set, selects integrations of this environment.
	Environment string
}

func (f IntegrationFilter) key() string {
	parts := []string{f.PartnerID}
	if f.State != 0 {
		parts = append(parts, "state="+strconv.Itoa(int(f.State)))
	}
	if f.Owner != "" {
		parts = append(parts, "owner="+strings.ToLower(f.Owner))
	}
	if f.Environment != "" {
		parts = append(parts, "env="+f.Environment)
	}
	if len(parts) == 1 {
		return f.PartnerID // the key of an unfiltered ListIntegrations, so its tokens stay valid
	}
	return strings.Join(parts, ";")
}

func (f IntegrationFilter) check() error {
	if f.PartnerID != "" {
		if err := fail.CheckID("partner_id", f.PartnerID); err != nil {
			return err
		}
	}
	if _, ok := treatyv1.IntegrationState_name[int32(f.State)]; !ok {
		return fail.Invalidf("state", "state must be an integration state")
	}
	if f.Owner != "" {
		if err := CheckName("owner", f.Owner); err != nil {
			return err
		}
	}
	if f.Environment != "" && !ValidEnvironment(f.Environment) {
		return fail.Invalidf("environment", "environment %q must match ^[a-z][a-z0-9-]{0,31}$", f.Environment)
	}
	return nil
}

func (f IntegrationFilter) match(rec *integrationRecord) bool {
	switch {
	case f.State != 0 && rec.State != f.State:
		return false
	case f.Owner != "" && !strings.EqualFold(rec.Owner, f.Owner):
		return false
	case f.Environment != "" && rec.Environment != f.Environment:
		return false
	}
	return true
}

// ListIntegrationsBy returns one page of the integrations filter selects, in id order, and the
// token of the next page ("" on the last). Page sizes are as for ListPartners.
func (r *Registry) ListIntegrationsBy(ctx context.Context, filter IntegrationFilter, pageSize int, pageToken string) ([]Integration, string, error) {
	if err := filter.check(); err != nil {
		return nil, "", err
	}
	return listWhere(r.cfg.Store, integrations, filter.PartnerID, filter.key(), pageSize, pageToken, filter.match, (*integrationRecord).integration)
}

// listWhere is list with a predicate: index names the index filter (a parent id, or ""), key the
// whole filter as page tokens name it.
func listWhere[R, T any](st store.Store, k kind, index, key string, pageSize int, pageToken string, match func(*R) bool, conv func(*R) T) ([]T, string, error) {
	bucket, prefix := k.bucket, ""
	if index != "" {
		bucket, prefix = k.index, index+"/"
	}
	q, err := newQuery(k.name, key, pageSize, pageToken)
	if err != nil {
		return nil, "", err
	}
	var out []T
	err = st.View(func(tx store.Tx) error {
		return q.scanWhere(tx, bucket, prefix, func(id string, take bool) (bool, error) {
			var rec R
			if err := k.load(tx, id, &rec); err != nil {
				return false, fmt.Errorf("registry: %s %q is listed but unreadable: %v", k.name, id, err)
			}
			if !match(&rec) {
				return false, nil
			}
			if take {
				out = append(out, conv(&rec))
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, "", err
	}
	return out, q.next, nil
}
