package registry

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/store"
)

// MaxWorkloadKeys is how many public keys a workload holds at once: its key, and the next one
// while it rotates. More would let a leaked old key linger unnoticed.
const MaxWorkloadKeys = 2

// maxSubject bounds a registered certificate subject.
const maxSubject = 1024

// TLSSubject names the CA-issued client certificate a workload authenticates with by
// tls_client_auth (RFC 8705 section 2.1.2): exactly one field is set.
type TLSSubject struct {
	// SubjectDN is the certificate's subject distinguished name in RFC 4514 form, for example
	// "CN=orders,O=Acme", compared case-insensitively with the certificate subject as Go's
	// crypto/x509 renders it (pkix.Name.String).
	SubjectDN string `json:"subject_dn,omitempty"`
	// SANDNS is a dNSName the certificate's subject alternative names must contain (compared
	// case-insensitively).
	SANDNS string `json:"san_dns,omitempty"`
	// SANURI is a URI the certificate's subject alternative names must contain (compared exactly),
	// for example a SPIFFE id.
	SANURI string `json:"san_uri,omitempty"`
}

// Check validates a subject to register: nil, or exactly one field set, printable and bounded.
func (t *TLSSubject) Check(field string) error {
	if t == nil {
		return nil
	}
	set := 0
	for name, v := range map[string]string{"subject_dn": t.SubjectDN, "san_dns": t.SANDNS, "san_uri": t.SANURI} {
		if v == "" {
			continue
		}
		set++
		f := field + "." + name
		if err := checkText(f, v, maxSubject); err != nil {
			return err
		}
		if !utf8.ValidString(v) || strings.TrimSpace(v) != v {
			return fail.Invalidf(f, "%s must not start or end with spaces", f)
		}
	}
	if set != 1 {
		return fail.Invalidf(field, "%s must set exactly one of subject_dn, san_dns and san_uri", field)
	}
	if t.SANURI != "" {
		if u, err := url.Parse(t.SANURI); err != nil || u.Scheme == "" {
			return fail.Invalidf(field+".san_uri", "%s.san_uri must be an absolute URI, for example spiffe://example.org/orders", field)
		}
	}
	return nil
}

// String renders the subject for audit records: "subject_dn=...", "san_dns=..." or "san_uri=...".
func (t *TLSSubject) String() string {
	switch {
	case t == nil:
		return ""
	case t.SubjectDN != "":
		return "subject_dn=" + t.SubjectDN
	case t.SANDNS != "":
		return "san_dns=" + t.SANDNS
	}
	return "san_uri=" + t.SANURI
}

func (t *TLSSubject) clone() *TLSSubject {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// AddWorkloadKey registers another public key for a workload that is not retired, so it can
// rotate its key without a gap: sign with the new key once it is added, then remove the old one.
// A third key is a FailedPrecondition error. Keys are not part of the feed (the issuer reads them
// from the registry), so the returned sequence is 0. The reason is optional; the audit record
// says "key added" without one.
func (r *Registry) AddWorkloadKey(ctx context.Context, id, publicKeyPEM, reason, actor string) (Workload, uint64, error) {
	if err := fail.CheckID("id", id); err != nil {
		return Workload{}, 0, err
	}
	key, err := ParsePublicKey("public_key_pem", publicKeyPEM)
	if err != nil {
		return Workload{}, 0, err
	}
	if err := CheckActor("actor", actor); err != nil {
		return Workload{}, 0, err
	}
	reason, err = optionalReason(reason, "key "+key.KeyID+" added")
	if err != nil {
		return Workload{}, 0, err
	}
	return r.changeKeys(ctx, id, reason, actor, "workload.key.add", func(tx store.Tx, rec *workloadRecord) error {
		if len(rec.Keys) >= MaxWorkloadKeys {
			return fail.Preconditionf("workload %q already has %d keys, the most it may hold; remove the older key (RemoveWorkloadKey) before adding another", id, len(rec.Keys))
		}
		if err := claimKey(tx, key, id); err != nil {
			return err
		}
		rec.Keys = append(rec.Keys, key)
		return nil
	})
}

// RemoveWorkloadKey removes the key keyID from a workload that is not retired, ending a rotation.
// Removing its last key is a FailedPrecondition error unless the workload authenticates by a
// registered certificate subject (TLS). The returned sequence is 0, as for AddWorkloadKey. Removing
// a key is a security action: the reason is required.
func (r *Registry) RemoveWorkloadKey(ctx context.Context, id, keyID, reason, actor string) (Workload, uint64, error) {
	if err := fail.CheckID("id", id); err != nil {
		return Workload{}, 0, err
	}
	if err := fail.CheckOpaqueID("key_id", keyID); err != nil {
		return Workload{}, 0, err
	}
	if err := CheckReason("reason", reason); err != nil {
		return Workload{}, 0, err
	}
	if err := CheckActor("actor", actor); err != nil {
		return Workload{}, 0, err
	}
	return r.changeKeys(ctx, id, reason, actor, "workload.key.remove", func(tx store.Tx, rec *workloadRecord) error {
		n := slices.IndexFunc(rec.Keys, func(k Key) bool { return k.KeyID == keyID })
		switch {
		case n < 0:
			return fail.NotFoundf("workload %q has no key %q", id, keyID)
		case len(rec.Keys) == 1 && rec.TLS == nil:
			return fail.Preconditionf("key %q is the last key of workload %q, which could no longer authenticate; add its new key first (AddWorkloadKey), or retire the workload", keyID, id)
		}
		rec.Keys = slices.Delete(rec.Keys, n, n+1)
		return tx.Delete(bucketWorkloadKeys, []byte(keyID))
	})
}

// changeKeys applies edit to a workload's record that is not retired, in one audited transaction.
func (r *Registry) changeKeys(ctx context.Context, id, reason, actor, action string, edit func(store.Tx, *workloadRecord) error) (Workload, uint64, error) {
	now := r.now()
	var rec workloadRecord
	seq, err := r.commit(ctx, func(tx store.Tx) (change, error) {
		if err := workloads.load(tx, id, &rec); err != nil {
			return change{}, err
		}
		if rec.State == workloadRetired {
			return change{}, fail.Preconditionf("workload %q is %s; its keys can no longer change", id, feed.StateName(rec.State))
		}
		before := rec.summary()
		if err := edit(tx, &rec); err != nil {
			return change{}, err
		}
		rec.Updated, rec.Revision = now, rec.Revision+1
		if err := workloads.put(tx, id, rec.IntegrationID, &rec); err != nil {
			return change{}, err
		}
		return change{audit: AuditRecord{Time: now, Actor: actor, Action: action, Target: "workload/" + id,
			Reason: reason, Before: before, After: rec.summary()}}, nil
	})
	if !committed(err) {
		return Workload{}, 0, err
	}
	return rec.workload(), seq, err
}
