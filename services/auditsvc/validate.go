package auditsvc

import (
	"encoding/hex"
	"strconv"
	"strings"
	"unicode"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

// maxTarget bounds a target filter: a kind, a slash and an id.
const maxTarget = 256

// validateList checks a list request and returns the sequence to start after.
func validateList(req *treatyv1.ListAuditRecordsRequest) (uint64, error) {
	if req.GetPageSize() < 0 {
		return 0, fail.Invalidf("page_size", "page_size must not be negative")
	}
	if t := req.GetTarget(); t != "" {
		kind, id, ok := strings.Cut(t, "/")
		if !ok || kind == "" || id == "" || len(t) > maxTarget || strings.ContainsFunc(t, func(r rune) bool { return !unicode.IsPrint(r) || r == ' ' }) {
			return 0, fail.Invalidf("target", "target must be \"kind/id\", such as partner/acme, of at most %d bytes", maxTarget)
		}
	}
	tok := req.GetPageToken()
	if tok == "" {
		return req.GetAfterSequence(), nil
	}
	if req.GetAfterSequence() != 0 {
		return 0, fail.Invalidf("page_token", "page_token continues a listing; it cannot be combined with after_sequence")
	}
	after, err := strconv.ParseUint(strings.TrimPrefix(tok, "a"), 10, 64)
	if err != nil || !strings.HasPrefix(tok, "a") {
		return 0, fail.Invalidf("page_token", "page_token is not one this service issued")
	}
	return after, nil
}

// validateVerify checks a verify request and returns its anchor (zero for none).
func validateVerify(req *treatyv1.VerifyAuditRequest) (registry.AuditAnchor, error) {
	seq, h := req.GetAnchorSequence(), req.GetAnchorHash()
	switch {
	case seq == 0 && h == "":
		return registry.AuditAnchor{}, nil
	case seq == 0:
		return registry.AuditAnchor{}, fail.Invalidf("anchor_sequence", "anchor_sequence is required with anchor_hash")
	case !validHash(h):
		return registry.AuditAnchor{}, fail.Invalidf("anchor_hash", "anchor_hash must be a SHA-256 hash in lowercase hex (64 characters)")
	}
	return registry.AuditAnchor{Sequence: seq, Hash: h}, nil
}

func validHash(h string) bool {
	raw, err := hex.DecodeString(h)
	return err == nil && len(raw) == 32 && strings.ToLower(h) == h
}
