package pdp

import (
	"context"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/token"
)

// MaxClockSkew is how far in the future a token's iat may lie, for issuers whose clock runs
// ahead. Expiry gets no skew: a token is dead at its exp, so that revocation by expiry is exact.
const MaxClockSkew = 60 * time.Second

// Check decides whether a subject may perform an action on a resource now. It loads the state
// once and decides on it alone, so the decision is consistent with the Sequence it reports. With
// a warm token cache and no partner policy, it allocates nothing (the decision log aside).
func (p *PDP) Check(ctx context.Context, req CheckRequest) (Decision, error) {
	start := p.clockStart()
	s, err := p.stateAt(ctx, req.MinSequence)
	if err != nil {
		return Decision{}, err
	}
	d := p.decide(ctx, s, &req)
	if p.cfg.Recorder != nil {
		p.record(&req, &d, start)
	}
	return d, nil
}

// CheckBatch decides several checks on one state, in order, stopping where the semantics say.
// The requests' own MinSequence is ignored: minSeq applies to the batch.
func (p *PDP) CheckBatch(ctx context.Context, reqs []CheckRequest, sem BatchSemantics, minSeq uint64) ([]Decision, error) {
	if len(reqs) > MaxBatch {
		return nil, fail.Invalidf("checks", "a batch holds at most %d checks, not %d: split it", MaxBatch, len(reqs))
	}
	start := p.clockStart()
	s, err := p.stateAt(ctx, minSeq)
	if err != nil {
		return nil, err
	}
	out := make([]Decision, 0, len(reqs))
	for i := range reqs {
		d := p.decide(ctx, s, &reqs[i])
		if p.cfg.Recorder != nil {
			p.record(&reqs[i], &d, start)
		}
		out = append(out, d)
		if (sem == DenyOnFirstDeny && !d.Allow) || (sem == PermitOnFirstPermit && d.Allow) {
			break
		}
		start = p.clockStart()
	}
	return out, nil
}

// decide makes one decision on state s.
func (p *PDP) decide(ctx context.Context, s *feed.State, req *CheckRequest) Decision {
	d := Decision{DecisionID: p.ids.next(), Sequence: s.Sequence(), Epoch: s.Epoch()}
	reason := p.check(s, req, &d)
	if reason == ReasonSequenceAhead {
		// Another PDP decided the issuance, and this one has not applied that far yet: wait
		// briefly, as for min_sequence, then decide again. A rolled-back log never gets there.
		wctx, cancel := context.WithTimeout(ctx, maxSequenceAheadWait)
		later, err := p.stateAt(wctx, d.tokenSequence)
		cancel()
		if err == nil {
			d = Decision{DecisionID: d.DecisionID, Sequence: later.Sequence(), Epoch: later.Epoch()}
			reason = p.check(later, req, &d)
		}
	}
	d.Allow = reason == ReasonGranted
	switch reason {
	case ReasonGranted:
		d.Reasons = grantedReasons // the common answer, without a map lookup
		p.stats.checks.add(grantedIndex)
	case reasonPolicy:
		p.stats.checks.add(policyIndex)
	default:
		e, ok := reasons[reason]
		d.Reasons = e.list
		p.stats.checks.add(indexOf(e, ok))
	}
	return d
}

// reasonPolicy is check's answer when a policy denied: the decision's Reasons already name it.
const reasonPolicy = "\x00policy"

// clockStart reads the clock for the decision log's latency, only when there is a log.
func (p *PDP) clockStart() time.Time {
	if p.cfg.Recorder == nil {
		return time.Time{}
	}
	return time.Now()
}

// record hands a decision to the decision log, by value (see Recorder), so that neither the
// request nor the decision escapes to the heap.
func (p *PDP) record(req *CheckRequest, d *Decision, start time.Time) {
	p.cfg.Recorder.Record(*req, *d, time.Since(start))
}

// maxSequenceAheadWait bounds how long a check waits for the feed to reach a token's tsq.
const maxSequenceAheadWait = time.Second

// check runs the checks of one decision on state s and returns the first reason that fails, or
// ReasonGranted. It fills in d's audit fields as it learns them.
func (p *PDP) check(s *feed.State, req *CheckRequest, d *Decision) string {
	if r := p.notReady(); r != "" {
		return r
	}
	switch {
	case req.Claims != nil:
		return p.checkClaims(s, req, d)
	case req.Token != "":
		return p.checkToken(s, req, d)
	case req.WorkloadID != "":
		return p.checkWorkload(s, req, d)
	}
	return ReasonMalformedToken // no subject at all: an empty token
}

// checkToken decides on a raw token. A cached token with a memo of a grant on s (memo.go) is
// granted after the checks that depend on the clock and the request alone; anything else takes
// the full path, whose grant of a cached token makes the memo for s.
func (p *PDP) checkToken(s *feed.State, req *CheckRequest, d *Decision) string {
	now := p.cfg.Now()
	e, m, c, key, r := p.verifyToken(s, req.Token, now.Unix())
	if r != "" {
		return r
	}
	if e != nil && m.stateID == s.ID() && memoGrant(m, e, req, now) {
		d.Subject, d.Partner, d.TokenID = c.Subject, c.Partner, c.ID
		e.markSeen(now.Unix())
		return ReasonGranted
	}
	if key == nil { // the memo's state is s, so s's key is the entry's: verifyToken skipped its lookup
		if key, r = signingKey(s, e.kid); r != "" {
			return r
		}
	}
	r = p.checkCredential(s, req, d, c, key, now)
	if r == ReasonGranted && e != nil && m.stateID != s.ID() {
		memoize(s, e, p.cfg.Environment)
	}
	if r == ReasonGranted {
		p.markSeen(e, req.Token, now.Unix())
	}
	return r
}

// checkClaims decides on claims a trusted caller verified itself: every check a verified token
// gets, but the signature.
func (p *PDP) checkClaims(s *feed.State, req *CheckRequest, d *Decision) string {
	if !req.Trusted {
		return ReasonClaimsNotTrusted
	}
	vc := req.Claims
	c := &vc.Claims
	if c.Issuer == "" || c.ID == "" || c.IssuedAt == 0 || c.Expiry == 0 || c.Sequence == 0 || vc.KeyID == "" ||
		c.Subject == "" || c.Partner == "" || c.Integration == "" {
		return ReasonClaimsIncomplete
	}
	key, r := signingKey(s, vc.KeyID)
	if r != "" {
		return r
	}
	return p.checkCredential(s, req, d, c, key, p.cfg.Now())
}

// checkCredential runs the checks that follow a credential's signature, on claims c signed by
// key: issuer, validity window, feed epoch and sequence, revocation, proof of possession, kill
// switch, lifecycle, scopes and audience, then the partner's policies.
func (p *PDP) checkCredential(s *feed.State, req *CheckRequest, d *Decision, c *token.Claims, key *feed.SigningKey, now time.Time) string {
	d.Subject, d.Partner, d.TokenID = c.Subject, c.Partner, c.ID
	if c.Issuer != key.Issuer {
		return ReasonWrongIssuer
	}
	if c.Expiry <= now.Unix() {
		return ReasonExpired
	}
	if c.IssuedAt > now.Add(MaxClockSkew).Unix() {
		return ReasonNotYetValid
	}
	if c.Epoch != s.Epoch() {
		return ReasonEpochMismatch
	}
	if c.Sequence > s.Sequence() {
		d.tokenSequence = c.Sequence
		return ReasonSequenceAhead
	}
	tsq := c.ChainSequence() // an exchanged token is as old as its oldest ancestor (exchange.go)
	if tsq < s.GlobalWatermark() {
		return ReasonRevokedGlobal
	}
	if _, revoked := s.RevokedCredential(c.ID); revoked {
		return ReasonRevoked
	}
	if r := chainReason(s, c); r != "" {
		return r
	}
	if c.Confirmation != nil {
		if r := checkProof(c.Confirmation, &req.Proof, req.Token, now); r != "" {
			return r
		}
	}

	// Kill switch before lifecycle, widest first: a blocked partner says more than the inactive
	// integration that may have followed from it.
	partner, hasPartner := s.Partner(c.Partner)
	integration, hasIntegration := s.Integration(c.Integration)
	workload, hasWorkload := s.Workload(c.Subject)
	if hasPartner {
		if r := controlReason(&partner.Control, tsq, ReasonPartnerBlocked, ReasonPartnerRevoked); r != "" {
			return r
		}
	}
	if hasIntegration {
		if r := controlReason(&integration.Control, tsq, ReasonIntegrationBlocked, ReasonIntegrationRevoked); r != "" {
			return r
		}
	}
	if hasWorkload {
		if r := controlReason(&workload.Control, tsq, ReasonWorkloadBlocked, ReasonWorkloadRevoked); r != "" {
			return r
		}
	}

	if r := lifecycleReason(partner, integration, workload, now); r != "" {
		return r
	}
	if workload.PartnerID != c.Partner || workload.IntegrationID != c.Integration || integration.PartnerID != c.Partner ||
		(c.ClientID != "" && c.ClientID != c.Presenter()) || (req.WorkloadID != "" && req.WorkloadID != c.Presenter()) {
		return ReasonSubjectMismatch
	}
	if r := actorsReason(s, c, tsq); r != "" {
		return r
	}
	if r := p.environmentReason(integration, &req.Context); r != "" {
		return r
	}

	if !c.HasScope(req.Action) {
		return ReasonScopeMissing
	}
	if !integration.AllowsScope(req.Action) {
		return ReasonScopeNotAllowed
	}
	if req.Resource != c.Audience {
		return ReasonAudienceMismatch
	}
	if !integration.AllowsAudience(c.Audience) {
		return ReasonAudienceNotAllowed
	}
	return p.grantUnlessPolicies(s, req, d, c.Partner, c.Integration, c.Subject)
}

// checkWorkload decides on a workload's current grants, without a credential, for a trusted
// caller: the action must be inside the integration's ceiling and the resource among its
// audiences.
func (p *PDP) checkWorkload(s *feed.State, req *CheckRequest, d *Decision) string {
	if !req.Trusted {
		return ReasonSubjectNotTrusted
	}
	workload, integration, r := workloadGrants(s, req.WorkloadID, p.cfg.Now())
	if workload != nil {
		d.Subject, d.Partner = workload.ID, workload.PartnerID
	}
	if r != "" {
		return r
	}
	if r := p.environmentReason(integration, &req.Context); r != "" {
		return r
	}
	if !integration.AllowsScope(req.Action) {
		return ReasonScopeNotAllowed
	}
	if !integration.AllowsAudience(req.Resource) {
		return ReasonAudienceNotAllowed
	}
	return p.grantUnlessPolicies(s, req, d, workload.PartnerID, workload.IntegrationID, workload.ID)
}

// Grants returns the integration whose grants (scope ceiling, audiences) the workload holds on s
// at now, or nil when it holds none: it is unknown, blocked (or its integration or partner is),
// not active, or past its partner's contract. Partner policies are not consulted.
func Grants(s *feed.State, workloadID string, now time.Time) *feed.Integration {
	_, integration, r := workloadGrants(s, workloadID, now)
	if r != "" {
		return nil
	}
	return integration
}

// workloadGrants looks a workload and its integration up on s and returns the reason it holds no
// grants at now, or "". Only blocks apply, not watermarks: there is no credential minted before a
// restore. The workload is returned whenever the state knows it.
func workloadGrants(s *feed.State, workloadID string, now time.Time) (*feed.Workload, *feed.Integration, string) {
	workload, ok := s.Workload(workloadID)
	if !ok {
		return nil, nil, ReasonWorkloadUnknown
	}
	partner, hasPartner := s.Partner(workload.PartnerID)
	integration, hasIntegration := s.Integration(workload.IntegrationID)
	switch {
	case hasPartner && partner.Block != nil:
		return workload, nil, ReasonPartnerBlocked
	case hasIntegration && integration.Block != nil:
		return workload, nil, ReasonIntegrationBlocked
	case workload.Block != nil:
		return workload, nil, ReasonWorkloadBlocked
	case workload.State == treatyv1.WorkloadState_WORKLOAD_STATE_UNSPECIFIED:
		return workload, nil, ReasonWorkloadUnknown // only a block or restore named it
	}
	if r := lifecycleReason(partner, integration, workload, now); r != "" {
		return workload, nil, r
	}
	if integration.PartnerID != workload.PartnerID {
		return workload, nil, ReasonSubjectMismatch
	}
	return workload, integration, ""
}

// grantUnlessPolicies has the partner's policies decide, once every grant check has passed: a
// deny names the policy in d's reasons.
func (p *PDP) grantUnlessPolicies(s *feed.State, req *CheckRequest, d *Decision, partner, integration, workload string) string {
	q := policyQuery{
		Partner: partner, Integration: integration, Workload: workload,
		Action: req.Action, Resource: req.Resource, Properties: req.Properties, Context: req.Context,
	}
	if deny := p.evaluatePolicies(s, &q, d); deny != nil {
		d.Reasons = deny
		return reasonPolicy
	}
	return ReasonGranted
}

// CheckIssuance decides whether the issuer may mint a credential now. The decision's Sequence is
// the sequence of the state it was made on, which the credential carries as its tsq: so a block
// or restore at a later sequence always applies to it.
func (p *PDP) CheckIssuance(ctx context.Context, req IssuanceRequest) (Decision, error) {
	s, err := p.stateAt(ctx, req.MinSequence)
	if err != nil {
		return Decision{}, err
	}
	d := Decision{DecisionID: p.ids.next(), Sequence: s.Sequence(), Epoch: s.Epoch(), Subject: req.WorkloadID}
	reason := p.checkIssuance(s, &req)
	d.Allow = reason == ReasonGranted
	e, ok := reasons[reason]
	d.Reasons = e.list
	p.stats.issuances.add(indexOf(e, ok))
	return d, nil
}

func (p *PDP) checkIssuance(s *feed.State, req *IssuanceRequest) string {
	if r := p.notReady(); r != "" {
		return r
	}
	if _, r := signingKey(s, req.Kid); r != "" {
		return r
	}
	// The workload names its integration and partner, so it is looked up first. Only blocks
	// matter here, not watermarks: the credential would be minted at the current sequence, which
	// is at or after every restore.
	workload, ok := s.Workload(req.WorkloadID)
	switch {
	case !ok:
		return ReasonWorkloadUnknown
	case workload.Block != nil:
		return ReasonWorkloadBlocked
	case workload.State == treatyv1.WorkloadState_WORKLOAD_STATE_UNSPECIFIED:
		return ReasonWorkloadUnknown // only a block or restore named it
	}
	integration, hasIntegration := s.Integration(workload.IntegrationID)
	if hasIntegration && integration.Block != nil {
		return ReasonIntegrationBlocked
	}
	partner, hasPartner := s.Partner(workload.PartnerID)
	if hasPartner && partner.Block != nil {
		return ReasonPartnerBlocked
	}
	if r := lifecycleReason(partner, integration, workload, p.cfg.Now()); r != "" {
		return r
	}
	if integration.PartnerID != workload.PartnerID {
		return ReasonSubjectMismatch
	}
	if r := p.issuanceEnvironmentReason(integration); r != "" {
		return r
	}
	if len(req.Scopes) == 0 {
		return ReasonScopeMissing
	}
	for _, scope := range req.Scopes {
		if !integration.AllowsScope(scope) {
			return ReasonScopeNotAllowed
		}
	}
	if !integration.AllowsAudience(req.Audience) {
		return ReasonAudienceNotAllowed
	}
	return ReasonGranted
}

// notReady returns the reason every decision is denied for while the PDP is not ready, or "".
func (p *PDP) notReady() string {
	switch p.Status() {
	case StatusReady:
		return ""
	case StatusStale:
		return ReasonStale
	}
	return ReasonSyncing
}

// controlReason applies a kill-switch control to a credential issued at tsq.
func controlReason(c *feed.Control, tsq uint64, blocked, revoked string) string {
	switch {
	case c.Block != nil:
		return blocked
	case tsq < c.Watermark:
		return revoked
	}
	return ""
}

// lifecycleReason checks the registry's lifecycle states and the contract window, partner first.
// A nil record is unknown, and so is a placeholder that only a block or restore created (its state
// is unspecified).
func lifecycleReason(p *feed.Partner, i *feed.Integration, w *feed.Workload, now time.Time) string {
	switch {
	case p == nil || p.State == treatyv1.PartnerState_PARTNER_STATE_UNSPECIFIED:
		return ReasonPartnerUnknown
	case p.State == treatyv1.PartnerState_PARTNER_STATE_SUSPENDED:
		return ReasonPartnerSuspended
	case p.State == treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING || p.State == treatyv1.PartnerState_PARTNER_STATE_TERMINATED:
		return ReasonPartnerTerminated
	case p.State != treatyv1.PartnerState_PARTNER_STATE_ACTIVE:
		return ReasonPartnerInactive
	case !now.Before(p.ContractEnd):
		return ReasonContractEnded
	case i == nil || i.State == treatyv1.IntegrationState_INTEGRATION_STATE_UNSPECIFIED:
		return ReasonIntegrationUnknown
	case i.State != treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE:
		return ReasonIntegrationInactive
	case w == nil || w.State == treatyv1.WorkloadState_WORKLOAD_STATE_UNSPECIFIED:
		return ReasonWorkloadUnknown
	case w.State != treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE:
		return ReasonWorkloadInactive
	}
	return ""
}
