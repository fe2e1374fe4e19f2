package revokersvc

import (
	"fmt"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// maxFilterPartners bounds SubscribeFilter.partner_ids: a gateway follows a few partners; one that
// follows many should take the whole feed.
const maxFilterPartners = 1000

// eventInfo is what filters look at in an event, worked out once per event for every subscriber.
type eventInfo struct {
	// partner is the partner the event is about; empty for events about no partner (signing keys,
	// the global watermark) and for events whose partner is unknown, which pass every partner
	// filter: a gateway may receive a revocation it does not need, never miss one it does.
	partner string
	// kind is the target kind of a revocation, block or restore; unspecified for enforcement
	// changes.
	kind treatyv1.TargetKind
	// anyKind passes every target-kind filter: the break-glass global watermark revokes
	// credentials of every kind.
	anyKind bool
}

// infoOf describes ev. state is the feed at or after ev, to find the partner of a blocked or
// restored integration or workload.
func infoOf(ev *treatyv1.Event, state *feed.State) eventInfo {
	switch c := ev.GetChange().(type) {
	case *treatyv1.Event_CredentialRevoked:
		return eventInfo{partner: c.CredentialRevoked.GetPartnerId(), kind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL}
	case *treatyv1.Event_Blocked:
		return eventInfo{partner: partnerOf(state, c.Blocked.GetTargetKind(), c.Blocked.GetTargetId()), kind: c.Blocked.GetTargetKind()}
	case *treatyv1.Event_Restored:
		return eventInfo{partner: partnerOf(state, c.Restored.GetTargetKind(), c.Restored.GetTargetId()), kind: c.Restored.GetTargetKind()}
	case *treatyv1.Event_SigningKeyRevoked:
		return eventInfo{kind: treatyv1.TargetKind_TARGET_KIND_SIGNING_KEY}
	case *treatyv1.Event_GlobalWatermark:
		return eventInfo{anyKind: true}
	case *treatyv1.Event_PartnerChanged:
		return eventInfo{partner: c.PartnerChanged.GetPartnerId()}
	case *treatyv1.Event_IntegrationChanged:
		return eventInfo{partner: c.IntegrationChanged.GetPartnerId()}
	case *treatyv1.Event_WorkloadChanged:
		return eventInfo{partner: c.WorkloadChanged.GetPartnerId()}
	case *treatyv1.Event_PolicyChanged:
		return eventInfo{partner: c.PolicyChanged.GetPartnerId()}
	default: // signing key published, and changes this version does not know: about no partner
		return eventInfo{}
	}
}

// partnerOf returns the partner of a blocked or restored entity, or "" if the state does not know
// it (the event then passes every partner filter).
func partnerOf(state *feed.State, kind treatyv1.TargetKind, id string) string {
	switch kind {
	case treatyv1.TargetKind_TARGET_KIND_PARTNER:
		return id
	case treatyv1.TargetKind_TARGET_KIND_INTEGRATION:
		if in, ok := state.Integration(id); ok {
			return in.PartnerID
		}
	case treatyv1.TargetKind_TARGET_KIND_WORKLOAD:
		if w, ok := state.Workload(id); ok {
			return w.PartnerID
		}
	}
	return ""
}

// filter is a validated SubscribeFilter.
type filter struct {
	partners map[string]struct{} // nil: every partner
	kinds    uint64              // bit k set: target kind k passes; zero: every event
}

// newFilter returns the filter for f, or nil if f filters nothing. f must be valid.
func newFilter(f *treatyv1.SubscribeFilter) *filter {
	if len(f.GetPartnerIds()) == 0 && len(f.GetTargetKinds()) == 0 {
		return nil
	}
	out := &filter{}
	if ids := f.GetPartnerIds(); len(ids) > 0 {
		out.partners = make(map[string]struct{}, len(ids))
		for _, id := range ids {
			out.partners[id] = struct{}{}
		}
	}
	for _, k := range f.GetTargetKinds() {
		out.kinds |= 1 << uint(k)
	}
	return out
}

// match reports whether an event passes the filter. A nil filter passes everything.
func (f *filter) match(i eventInfo) bool {
	if f == nil {
		return true
	}
	if f.partners != nil && i.partner != "" {
		if _, ok := f.partners[i.partner]; !ok {
			return false
		}
	}
	if f.kinds != 0 && !i.anyKind {
		if i.kind == treatyv1.TargetKind_TARGET_KIND_UNSPECIFIED || f.kinds&(1<<uint(i.kind)) == 0 {
			return false
		}
	}
	return true
}

// validateSubscribe checks a SubscribeRequest's filter.
func validateSubscribe(req *treatyv1.SubscribeRequest) error {
	f := req.GetFilter()
	if n := len(f.GetPartnerIds()); n > maxFilterPartners {
		return fail.Invalidf("filter.partner_ids", "filter.partner_ids: at most %d partner ids per filter, got %d", maxFilterPartners, n)
	}
	for i, id := range f.GetPartnerIds() {
		if err := fail.CheckID(fmt.Sprintf("filter.partner_ids[%d]", i), id); err != nil {
			return err
		}
	}
	for i, k := range f.GetTargetKinds() {
		if _, known := treatyv1.TargetKind_name[int32(k)]; !known || k == treatyv1.TargetKind_TARGET_KIND_UNSPECIFIED {
			return fail.Invalidf(fmt.Sprintf("filter.target_kinds[%d]", i), "filter.target_kinds[%d] must be a known target kind, got %d", i, k)
		}
	}
	return nil
}
