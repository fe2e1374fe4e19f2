package decisionlog

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
)

// Entry is one logged decision. It never holds a token: only the credential's id.
type Entry struct {
	// Seq is the log's own sequence number, from 1, gap-free until retention removes the oldest.
	Seq uint64
	// Time is when the decision was made, on the log's clock.
	Time time.Time
	// DecisionID is the PDP's id for the decision.
	DecisionID string
	// RequestID is the caller's request id, if any.
	RequestID string
	// Subject is the workload the decision was about, if known.
	Subject string
	// Partner is the partner the subject acts for, if known.
	Partner string
	// CredentialID is the jti of the checked token, if its signature verified.
	CredentialID string
	// Action and Resource are what was asked.
	Action, Resource string
	// Allow is the decision.
	Allow bool
	// Reasons are the decision's reasons.
	Reasons []string
	// PolicyID is the live policy version that took part, if any.
	PolicyID string
	// Latency is how long the decision took inside the PDP.
	Latency time.Duration
	// Sequence is the feed sequence the decision was made at.
	Sequence uint64
}

// pending is what Record queues for the writer: the fields of one decision, before the writer
// gives it a log sequence. The id keeps the PDP's own representation so queuing never converts.
type pending struct {
	time                             time.Time
	id                               decisionID
	requestID, subject, partner, jti string
	action, resource, policyID       string
	reasons                          []string
	latency                          time.Duration
	sequence                         uint64
	allow                            bool
}

// decisionID is pdp.Decision.DecisionID's type, held as is (16 bytes, no allocation) between
// Record and the writer, and spelled out only when written.
type decisionID = pdp.DecisionID

// idString spells a decision id for storage and display.
func idString(id decisionID) string { return id.String() }

// capture copies what the log keeps of one decision. Strings are immutable and pdp documents the
// Reasons slice as shared and never modified, so holding them is a copy without allocating; req and
// d themselves are never retained (so Record's copies stay on its stack), and req.Token is never
// read. The action and resource are the interner's copies, never the request's own strings (see
// interner).
func capture(names *interner, req *pdp.CheckRequest, d *pdp.Decision, latency time.Duration, now time.Time) pending {
	return pending{
		time: now, id: d.DecisionID, requestID: req.RequestID,
		subject: d.Subject, partner: d.Partner, jti: d.TokenID,
		action: names.get(req.Action), resource: names.get(req.Resource), policyID: d.PolicyID,
		reasons: d.Reasons, latency: latency, sequence: d.Sequence, allow: d.Allow,
	}
}

func (p *pending) entry(seq uint64) Entry {
	return Entry{
		Seq: seq, Time: p.time, DecisionID: idString(p.id), RequestID: p.requestID,
		Subject: p.subject, Partner: p.partner, CredentialID: p.jti,
		Action: p.action, Resource: p.resource, Allow: p.allow, Reasons: p.reasons,
		PolicyID: p.policyID, Latency: p.latency, Sequence: p.sequence,
	}
}

// Proto returns the entry as the API's DecisionRecord.
func (e Entry) Proto() *treatyv1.DecisionRecord {
	d := treatyv1.Decision_DECISION_DENY
	if e.Allow {
		d = treatyv1.Decision_DECISION_ALLOW
	}
	return &treatyv1.DecisionRecord{
		DecisionId: e.DecisionID, Time: timestamppb.New(e.Time), RequestId: e.RequestID,
		Subject: e.Subject, PartnerId: e.Partner, Action: e.Action, Resource: e.Resource,
		Decision: d, Reasons: e.Reasons, PolicyId: e.PolicyID, Latency: durationpb.New(e.Latency),
		Sequence: e.Sequence, CredentialId: e.CredentialID, LogSequence: e.Seq,
	}
}

// entryFromProto is the inverse of Proto.
func entryFromProto(r *treatyv1.DecisionRecord) Entry {
	return Entry{
		Seq: r.GetLogSequence(), Time: r.GetTime().AsTime(), DecisionID: r.GetDecisionId(),
		RequestID: r.GetRequestId(), Subject: r.GetSubject(), Partner: r.GetPartnerId(),
		CredentialID: r.GetCredentialId(), Action: r.GetAction(), Resource: r.GetResource(),
		Allow: r.GetDecision() == treatyv1.Decision_DECISION_ALLOW, Reasons: r.GetReasons(),
		PolicyID: r.GetPolicyId(), Latency: r.GetLatency().AsDuration(), Sequence: r.GetSequence(),
	}
}

// The stored value of an entry is its DecisionRecord (as Proto builds it) in protobuf's wire
// format: compact, quick to write from the one writer goroutine, and able to grow fields without
// a migration.
//
// encoder encodes a batch's values and keys into one buffer, reusing one DecisionRecord, so the
// writer does not allocate per entry what bbolt only reads until the commit. bbolt keeps a
// value's slice (not a copy) until the transaction ends: the buffer is reset only between
// transactions, and when it grows, the slices already handed out keep the old array.
type encoder struct {
	buf []byte
	rec treatyv1.DecisionRecord
	ts  timestamppb.Timestamp
	dur durationpb.Duration
}

// reset makes the buffer reusable; call it only once no transaction holds its slices.
func (enc *encoder) reset() { enc.buf = enc.buf[:0] }

// value encodes e as encode does.
func (enc *encoder) value(e *Entry) ([]byte, error) {
	d := treatyv1.Decision_DECISION_DENY
	if e.Allow {
		d = treatyv1.Decision_DECISION_ALLOW
	}
	enc.ts.Seconds, enc.ts.Nanos = e.Time.Unix(), int32(e.Time.Nanosecond())
	enc.dur.Seconds, enc.dur.Nanos = int64(e.Latency/time.Second), int32(e.Latency%time.Second)
	enc.rec = treatyv1.DecisionRecord{
		DecisionId: e.DecisionID, Time: &enc.ts, RequestId: e.RequestID,
		Subject: e.Subject, PartnerId: e.Partner, Action: e.Action, Resource: e.Resource,
		Decision: d, Reasons: e.Reasons, PolicyId: e.PolicyID, Latency: &enc.dur,
		Sequence: e.Sequence, CredentialId: e.CredentialID, LogSequence: e.Seq,
	}
	start := len(enc.buf)
	out, err := proto.MarshalOptions{}.MarshalAppend(enc.buf, &enc.rec)
	if err != nil {
		return nil, fmt.Errorf("encode decision record: %w", err)
	}
	enc.buf = out
	return out[start:len(out):len(out)], nil
}

// key appends a key with add and returns it.
func (enc *encoder) key(add func([]byte) []byte) []byte {
	start := len(enc.buf)
	enc.buf = add(enc.buf)
	return enc.buf[start:len(enc.buf):len(enc.buf)]
}

func decode(raw []byte) (Entry, error) {
	var r treatyv1.DecisionRecord
	if err := proto.Unmarshal(raw, &r); err != nil {
		return Entry{}, fmt.Errorf("decode decision record: %w", err)
	}
	return entryFromProto(&r), nil
}
