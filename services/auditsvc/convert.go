package auditsvc

import (
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

func recordProto(rec registry.AuditRecord) *treatyv1.AuditRecord {
	return &treatyv1.AuditRecord{
		Sequence: rec.Sequence, Time: timestamppb.New(rec.Time), Actor: rec.Actor, Action: rec.Action,
		Target: rec.Target, Reason: rec.Reason, Before: rec.Before, After: rec.After,
		PrevHash: rec.Prev, Hash: rec.Hash,
	}
}

// RecordFromProto returns the domain record a proto carries, for clients that export or
// re-verify records: its JSON is the stored form the hashes are computed over.
func RecordFromProto(m *treatyv1.AuditRecord) registry.AuditRecord {
	rec := registry.AuditRecord{
		Sequence: m.GetSequence(), Actor: m.GetActor(), Action: m.GetAction(), Target: m.GetTarget(),
		Reason: m.GetReason(), Prev: m.GetPrevHash(), Hash: m.GetHash(),
	}
	if m.GetTime() != nil {
		rec.Time = m.GetTime().AsTime()
	}
	if len(m.GetBefore()) > 0 {
		rec.Before = m.GetBefore()
	}
	if len(m.GetAfter()) > 0 {
		rec.After = m.GetAfter()
	}
	return rec
}

var problems = map[registry.AuditProblem]treatyv1.AuditProblem{
	registry.AuditUndecodable:      treatyv1.AuditProblem_AUDIT_PROBLEM_UNDECODABLE,
	registry.AuditSequenceMismatch: treatyv1.AuditProblem_AUDIT_PROBLEM_SEQUENCE_MISMATCH,
	registry.AuditGap:              treatyv1.AuditProblem_AUDIT_PROBLEM_GAP,
	registry.AuditPrevMismatch:     treatyv1.AuditProblem_AUDIT_PROBLEM_PREV_MISMATCH,
	registry.AuditHashMismatch:     treatyv1.AuditProblem_AUDIT_PROBLEM_HASH_MISMATCH,
	registry.AuditAnchorMismatch:   treatyv1.AuditProblem_AUDIT_PROBLEM_ANCHOR_MISMATCH,
	registry.AuditTruncated:        treatyv1.AuditProblem_AUDIT_PROBLEM_TRUNCATED,
}

func verificationProto(v registry.AuditVerification) *treatyv1.VerifyAuditResponse {
	resp := &treatyv1.VerifyAuditResponse{Records: v.Records, HeadSequence: v.HeadSequence, HeadHash: v.HeadHash}
	if b := v.Broken; b != nil {
		resp.Broken = &treatyv1.AuditBreak{Sequence: b.Sequence, Problem: problems[b.Problem], Detail: b.Detail}
	}
	return resp
}

// VerificationFromProto returns the domain verification a response carries, so that a client
// reports a server's verification exactly as it reports one of a local file.
func VerificationFromProto(m *treatyv1.VerifyAuditResponse) registry.AuditVerification {
	v := registry.AuditVerification{Records: m.GetRecords(), HeadSequence: m.GetHeadSequence(), HeadHash: m.GetHeadHash()}
	if b := m.GetBroken(); b != nil {
		// The domain names are the enum's, lower case without the prefix ("hash_mismatch"), so a
		// problem a newer server reports still reads sensibly.
		name := strings.ToLower(strings.TrimPrefix(b.GetProblem().String(), "AUDIT_PROBLEM_"))
		v.Broken = &registry.AuditBreak{Sequence: b.GetSequence(), Problem: registry.AuditProblem(name), Detail: b.GetDetail()}
	}
	return v
}
