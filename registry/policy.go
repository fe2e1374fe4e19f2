package registry

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/policy"
	"github.com/treaty-dev/treaty/store"
)

// Policy is one version of a partner's Cedar policy set.
type Policy struct {
	// ID is `PARTNER@VERSION`.
	ID        string
	PartnerID string
	// Version counts from 1 per partner.
	Version uint64
	// Mode is live or shadow, as put.
	Mode treatyv1.PolicyMode
	// Text is the policy set in the Cedar language.
	Text string
	// Current says whether this version is the partner's current one of its mode.
	Current bool
	// Created is when it was stored, by Actor.
	Created time.Time
	Actor   string
}

// policyRecord is a policy version as stored, under policyKey.
type policyRecord struct {
	PartnerID string              `json:"partner_id"`
	Version   uint64              `json:"version"`
	Mode      treatyv1.PolicyMode `json:"mode"`
	Text      string              `json:"text"`
	Created   time.Time           `json:"created"`
	Actor     string              `json:"actor,omitempty"`
}

// policyHeads is a partner's latest version and its current live and shadow versions (0: none),
// stored under the partner id.
type policyHeads struct {
	Latest uint64 `json:"latest"`
	Live   uint64 `json:"live"`
	Shadow uint64 `json:"shadow"`
}

func (rec *policyRecord) policy(h policyHeads) Policy {
	current := rec.Version == h.Live
	if rec.Mode == treatyv1.PolicyMode_POLICY_MODE_SHADOW {
		current = rec.Version == h.Shadow
	}
	return Policy{
		ID: feed.PolicyID(rec.PartnerID, rec.Version), PartnerID: rec.PartnerID, Version: rec.Version, Mode: rec.Mode,
		Text: rec.Text, Current: current, Created: rec.Created, Actor: rec.Actor,
	}
}

// policyKey orders versions by partner id, then newest first: "partner\x00" sorts before any
// longer id that starts with it, and the version is stored inverted.
func policyKey(partnerID string, version uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(partnerID+"\x00"), ^version)
}

func loadHeads(tx store.Tx, partnerID string) (policyHeads, error) {
	var h policyHeads
	raw := tx.Get(bucketPolicyHeads, []byte(partnerID))
	if raw == nil {
		return h, nil
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return h, fmt.Errorf("registry: decode policy heads of %q: %w", partnerID, err)
	}
	return h, nil
}

func loadPolicy(tx store.Tx, partnerID string, version uint64) (policyRecord, error) {
	var rec policyRecord
	raw := tx.Get(bucketPolicies, policyKey(partnerID, version))
	if raw == nil {
		return rec, fail.NotFoundf("policy %s does not exist", feed.PolicyID(partnerID, version))
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		return rec, fmt.Errorf("registry: decode policy %s: %w", feed.PolicyID(partnerID, version), err)
	}
	return rec, nil
}

func putJSON(tx store.Tx, bucket string, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("registry: encode %s: %w", bucket, err)
	}
	return tx.Put(bucket, key, raw)
}

func policyEvent(actor, reason, partnerID string, mode treatyv1.PolicyMode, version uint64, text string) *treatyv1.Event {
	pc := &treatyv1.PolicyChanged{PartnerId: partnerID, Mode: mode, Version: version, Text: text}
	if text != "" {
		pc.PolicyId = feed.PolicyID(partnerID, version)
	}
	return &treatyv1.Event{Actor: actor, Reason: reason, Change: &treatyv1.Event_PolicyChanged{PolicyChanged: pc}}
}

// PutPolicy stores a new version of a partner's policy set, live (the default) or shadow, and
// publishes it to the decision points. The text must parse and validate (see package policy); the
// error names the line. Putting a live version whose text equals the current shadow's promotes
// it: the shadow is cleared in the same write. It returns the version and the feed sequence of its
// last event. The reason is optional; the audit record says the version was put without one.
func (r *Registry) PutPolicy(ctx context.Context, partnerID, text string, mode treatyv1.PolicyMode, reason, actor string) (Policy, uint64, error) {
	if err := fail.CheckID("partner_id", partnerID); err != nil {
		return Policy{}, 0, err
	}
	switch mode {
	case treatyv1.PolicyMode_POLICY_MODE_UNSPECIFIED:
		mode = treatyv1.PolicyMode_POLICY_MODE_LIVE
	case treatyv1.PolicyMode_POLICY_MODE_LIVE, treatyv1.PolicyMode_POLICY_MODE_SHADOW:
	default:
		return Policy{}, 0, fail.Invalidf("mode", "mode must be live or shadow")
	}
	if strings.TrimSpace(text) == "" {
		return Policy{}, 0, fail.Invalidf("text", "text is required: the policy set in the Cedar language")
	}
	if _, err := policy.Parse(partnerID, text); err != nil {
		return Policy{}, 0, err
	}
	if err := CheckActor("actor", actor); err != nil {
		return Policy{}, 0, err
	}
	if err := checkOptionalReason(reason); err != nil {
		return Policy{}, 0, err
	}
	now := r.now()
	rec := policyRecord{PartnerID: partnerID, Mode: mode, Text: text, Created: now, Actor: actor}
	var heads policyHeads
	seq, err := r.commit(ctx, func(tx store.Tx) (change, error) {
		var p partnerRecord
		if err := partners.load(tx, partnerID, &p); err != nil {
			return change{}, err
		}
		if p.State == treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING || p.State == treatyv1.PartnerState_PARTNER_STATE_TERMINATED {
			return change{}, fail.Preconditionf("partner %q is %s; its policies can no longer change", partnerID, feed.StateName(p.State))
		}
		var err error
		if heads, err = loadHeads(tx, partnerID); err != nil {
			return change{}, err
		}
		before := heads.summary(partnerID)
		heads.Latest++
		rec.Version = heads.Latest
		id := feed.PolicyID(partnerID, rec.Version)
		action := "policy.put"
		why, _ := optionalReason(reason, "policy "+id+" put")
		events := []*treatyv1.Event{policyEvent(actor, "policy "+id+" put", partnerID, mode, rec.Version, text)}
		if mode == treatyv1.PolicyMode_POLICY_MODE_SHADOW {
			heads.Shadow = rec.Version
		} else {
			heads.Live = rec.Version
			if heads.Shadow != 0 {
				shadow, err := loadPolicy(tx, partnerID, heads.Shadow)
				if err != nil {
					return change{}, err
				}
				if shadow.Text == text {
					action = "policy.promote"
					heads.Shadow = 0
					events = append(events, policyEvent(actor, "shadow promoted to "+id, partnerID, treatyv1.PolicyMode_POLICY_MODE_SHADOW, 0, ""))
				}
			}
		}
		if err := putJSON(tx, bucketPolicies, policyKey(partnerID, rec.Version), &rec); err != nil {
			return change{}, err
		}
		if err := putJSON(tx, bucketPolicyHeads, []byte(partnerID), &heads); err != nil {
			return change{}, err
		}
		return change{
			audit: AuditRecord{Time: now, Actor: actor, Action: action, Target: "policy/" + id,
				Reason: why, Before: before, After: heads.summary(partnerID)},
			events: events,
		}, nil
	})
	if !committed(err) {
		return Policy{}, 0, err
	}
	return rec.policy(heads), seq, err
}

// summary is what the audit trail records of a partner's policies: its current versions.
func (h policyHeads) summary(partnerID string) map[string]string {
	m := map[string]string{}
	if h.Live != 0 {
		m["live"] = feed.PolicyID(partnerID, h.Live)
	}
	if h.Shadow != 0 {
		m["shadow"] = feed.PolicyID(partnerID, h.Shadow)
	}
	return m
}

// GetPolicy returns a policy version by id (`PARTNER@VERSION`), or the partner's current live
// version when id is a partner id.
func (r *Registry) GetPolicy(ctx context.Context, id string) (Policy, error) {
	partnerID, versionText, versioned := strings.Cut(id, "@")
	if err := fail.CheckID("id", partnerID); err != nil {
		return Policy{}, fail.Invalidf("id", "id must be PARTNER@VERSION or a partner id, not %q", fail.Clip(id))
	}
	var version uint64
	if versioned {
		v, err := strconv.ParseUint(versionText, 10, 64)
		if err != nil || v == 0 || strconv.FormatUint(v, 10) != versionText {
			return Policy{}, fail.Invalidf("id", "id must be PARTNER@VERSION with a version from 1, not %q", id)
		}
		version = v
	}
	var out Policy
	err := r.cfg.Store.View(func(tx store.Tx) error {
		heads, err := loadHeads(tx, partnerID)
		if err != nil {
			return err
		}
		if !versioned {
			if version = heads.Live; version == 0 {
				if !partners.exists(tx, partnerID) {
					return fail.NotFoundf("partner %q does not exist", partnerID)
				}
				return fail.NotFoundf("partner %q has no live policy", partnerID)
			}
		}
		rec, err := loadPolicy(tx, partnerID, version)
		if err != nil {
			return err
		}
		out = rec.policy(heads)
		return nil
	})
	return out, err
}

// ListPolicies returns one page of policy versions, by partner id and then newest first, only
// partnerID's if it is set, and the next page's token ("" on the last). A page size of 0 means
// 100; larger sizes are capped at 1000.
func (r *Registry) ListPolicies(ctx context.Context, partnerID string, pageSize int, pageToken string) ([]Policy, string, error) {
	var prefix []byte
	if partnerID != "" {
		if err := fail.CheckID("partner_id", partnerID); err != nil {
			return nil, "", err
		}
		prefix = []byte(partnerID + "\x00")
	}
	q, err := newQuery("policy", partnerID, pageSize, "")
	if err != nil {
		return nil, "", err
	}
	var start []byte
	if pageToken != "" {
		if start, err = policyPageStart(partnerID, pageToken); err != nil {
			return nil, "", err
		}
	}
	var out []Policy
	var next string
	err = r.cfg.Store.View(func(tx store.Tx) error {
		heads := map[string]policyHeads{}
		var last []byte
		return tx.Scan(bucketPolicies, prefix, start, func(k, v []byte) (bool, error) {
			if len(out) == q.size {
				next = policyPageToken(partnerID, last)
				return false, nil
			}
			var rec policyRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return false, fmt.Errorf("registry: decode policy %q: %w", k, err)
			}
			h, ok := heads[rec.PartnerID]
			if !ok {
				if h, err = loadHeads(tx, rec.PartnerID); err != nil {
					return false, err
				}
				heads[rec.PartnerID] = h
			}
			out = append(out, rec.policy(h))
			last = append(last[:0], k...)
			return true, nil
		})
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// Policy page tokens carry the last key of the previous page, bound to the filter.
func policyPageToken(filter string, last []byte) string {
	return base64.RawURLEncoding.EncodeToString([]byte(tokenVersion + "\x00policy\x00" + filter + "\x00" + hex.EncodeToString(last)))
}

func policyPageStart(filter, token string) ([]byte, error) {
	bad := fail.Invalidf("page_token", "page_token is not a token this list returned; start again without it")
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return nil, bad
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 4 || parts[0] != tokenVersion || parts[1] != "policy" {
		return nil, bad
	}
	if parts[2] != filter {
		return nil, fail.Invalidf("page_token", "page_token belongs to another list or filter; pass the same filter as the call that returned it")
	}
	last, err := hex.DecodeString(parts[3])
	if err != nil || len(last) < 9 {
		return nil, bad
	}
	return append(last, 0), nil // the smallest key after the last one
}
