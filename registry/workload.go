package registry

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// Workload is a non-human identity acting for an integration.
type Workload struct {
	// ID is the workload's unique id; it is also its OAuth client id.
	ID string
	// IntegrationID is the integration it acts for.
	IntegrationID string
	// PartnerID is the partner of that integration.
	PartnerID string
	// Keys are the public keys its client assertions are verified with: one, or two while it
	// rotates (MaxWorkloadKeys).
	Keys []Key
	// TLS, if set, is the CA-issued client certificate subject it authenticates with by
	// tls_client_auth.
	TLS *TLSSubject
	// State is its lifecycle state.
	State treatyv1.WorkloadState
	// CreatedBy is who created it.
	CreatedBy string
	// LastUsed is the last time a decision point reported allowing a request with one of its
	// credentials, as the issuer's inventory knows it (see WorkloadUsage); zero if never, or
	// unknown. It is not stored in the registry.
	LastUsed time.Time
	// Created and Updated are when it was created and last changed.
	Created, Updated time.Time
	// Etag is an opaque version that changes with every change.
	Etag string
}

// workloadRecord is a workload as stored.
type workloadRecord struct {
	ID            string                 `json:"id"`
	IntegrationID string                 `json:"integration_id"`
	PartnerID     string                 `json:"partner_id"`
	Keys          []Key                  `json:"keys"`
	TLS           *TLSSubject            `json:"tls,omitempty"`
	State         treatyv1.WorkloadState `json:"state"`
	Created       time.Time              `json:"created"`
	Updated       time.Time              `json:"updated"`
	Revision      uint64                 `json:"revision"`
	CreatedBy     string                 `json:"created_by,omitempty"`
}

func (rec *workloadRecord) workload() Workload {
	return Workload{
		ID: rec.ID, IntegrationID: rec.IntegrationID, PartnerID: rec.PartnerID, Keys: slices.Clone(rec.Keys),
		TLS: rec.TLS.clone(), State: rec.State, Created: rec.Created, Updated: rec.Updated, Etag: etag(rec.Revision),
		CreatedBy: rec.CreatedBy,
	}
}

func (rec *workloadRecord) summary() map[string]string {
	kids := make([]string, len(rec.Keys))
	for i, k := range rec.Keys {
		kids[i] = k.KeyID
	}
	out := map[string]string{
		"state":          feed.StateName(rec.State),
		"integration_id": rec.IntegrationID,
		"partner_id":     rec.PartnerID,
		"key_ids":        strings.Join(kids, " "),
	}
	if rec.TLS != nil {
		out["tls_subject"] = rec.TLS.String()
	}
	return out
}

// changed is the workload's enforcement fields as a feed event.
func (rec *workloadRecord) changed(actor, reason string) *treatyv1.Event {
	return &treatyv1.Event{Actor: actor, Reason: reason, Change: &treatyv1.Event_WorkloadChanged{WorkloadChanged: &treatyv1.WorkloadChanged{
		WorkloadId: rec.ID, IntegrationId: rec.IntegrationID, PartnerId: rec.PartnerID, State: rec.State,
	}}}
}

// CreateWorkload registers a workload with one public key (PKIX "PUBLIC KEY" PEM); see
// CreateWorkloadFrom.
func (r *Registry) CreateWorkload(ctx context.Context, id, integrationID, publicKeyPEM, reason, actor string) (Workload, uint64, error) {
	return r.CreateWorkloadFrom(ctx, WorkloadSpec{ID: id, IntegrationID: integrationID, PublicKeyPEM: publicKeyPEM}, reason, actor)
}

// WorkloadSpec is what creating a workload takes.
type WorkloadSpec struct {
	ID, IntegrationID string
	// PublicKeyPEM is its public key (see ParsePublicKey); optional if TLS is set.
	PublicKeyPEM string
	// TLS, if set, is the client certificate subject it authenticates with by tls_client_auth.
	TLS *TLSSubject
}

// CreateWorkloadFrom registers a workload with its public key, its TLS client certificate subject
// or both, under an active integration of an active partner, active at once, and returns it with
// the feed sequence of its WorkloadChanged event. A key registered for another workload is
// refused, so that one key never authenticates two workloads. The reason is optional; the audit
// record says "workload created" without one.
func (r *Registry) CreateWorkloadFrom(ctx context.Context, spec WorkloadSpec, reason, actor string) (Workload, uint64, error) {
	id, integrationID := spec.ID, spec.IntegrationID
	if err := fail.CheckID("id", id); err != nil {
		return Workload{}, 0, err
	}
	if err := fail.CheckID("integration_id", integrationID); err != nil {
		return Workload{}, 0, err
	}
	var keys []Key
	if spec.TLS == nil || strings.TrimSpace(spec.PublicKeyPEM) != "" {
		key, err := ParsePublicKey("public_key_pem", spec.PublicKeyPEM)
		if err != nil {
			return Workload{}, 0, err
		}
		keys = []Key{key}
	}
	if err := spec.TLS.Check("tls_client_auth"); err != nil {
		return Workload{}, 0, err
	}
	if err := CheckActor("actor", actor); err != nil {
		return Workload{}, 0, err
	}
	reason, err := optionalReason(reason, "workload created")
	if err != nil {
		return Workload{}, 0, err
	}
	now := r.now()
	rec := newWorkloadRecord(spec, keys, now, actor)
	seq, err := r.commit(ctx, func(tx store.Tx) (change, error) {
		if workloads.exists(tx, id) {
			return change{}, fail.AlreadyExistsf("workload %q already exists", id)
		}
		var in integrationRecord
		if err := integrations.load(tx, integrationID, &in); err != nil {
			return change{}, err
		}
		if in.State != treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE {
			return change{}, fail.Preconditionf("integration %q is %s; workloads can only be created under an active integration",
				integrationID, feed.StateName(in.State))
		}
		if err := activePartner(tx, in.PartnerID, "workloads can only be created under an active partner"); err != nil {
			return change{}, err
		}
		for _, key := range keys {
			if err := claimKey(tx, key, id); err != nil {
				return change{}, err
			}
		}
		rec.PartnerID = in.PartnerID
		if err := workloads.put(tx, id, integrationID, &rec); err != nil {
			return change{}, err
		}
		return change{
			audit: AuditRecord{Time: now, Actor: actor, Action: "workload.create", Target: "workload/" + id,
				Reason: reason, After: rec.summary()},
			events: []*treatyv1.Event{rec.changed(actor, "workload created")},
		}, nil
	})
	if !committed(err) {
		return Workload{}, 0, err
	}
	return rec.workload(), seq, err
}

// claimKey records that key is registered for workload id, refusing a key registered for any
// workload already.
func claimKey(tx store.Tx, key Key, id string) error {
	if owner := tx.Get(bucketWorkloadKeys, []byte(key.KeyID)); owner != nil {
		if string(owner) == id {
			return fail.AlreadyExistsf("this public key is already registered for workload %q", id)
		}
		return fail.AlreadyExistsf("this public key is already registered for workload %q; generate a new key pair for each workload", owner)
	}
	return tx.Put(bucketWorkloadKeys, []byte(key.KeyID), []byte(id))
}

// GetWorkload returns the workload with the given id, with its last use when the inventory can
// tell (see WorkloadUsage).
func (r *Registry) GetWorkload(ctx context.Context, id string) (Workload, error) {
	w, err := r.GetWorkloadRecord(ctx, id)
	if err != nil {
		return Workload{}, err
	}
	ws := []Workload{w}
	r.fillLastUsed(ctx, ws)
	return ws[0], nil
}

// newWorkloadRecord is a new workload's first revision, active, created now by actor; its partner
// is set by the caller from the integration.
func newWorkloadRecord(spec WorkloadSpec, keys []Key, now time.Time, actor string) workloadRecord {
	return workloadRecord{
		ID: spec.ID, IntegrationID: spec.IntegrationID, Keys: keys, TLS: spec.TLS.clone(),
		State: treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE, Created: now, Updated: now, Revision: 1,
		CreatedBy: actor,
	}
}

// GetWorkloadRecord returns the workload with the given id as the registry stores it, without
// asking the inventory for its last use: the issuer reads workloads this way on its issuance path,
// which must not wait on the issuer's own usage marks.
func (r *Registry) GetWorkloadRecord(ctx context.Context, id string) (Workload, error) {
	return get(r.cfg.Store, workloads, id, (*workloadRecord).workload)
}

// ListWorkloads returns one page of workloads in id order, only those of integrationID if it is
// set, and the token of the next page ("" on the last). Page sizes are as for ListPartners. Their
// last use is filled in when the inventory can tell (see WorkloadUsage).
func (r *Registry) ListWorkloads(ctx context.Context, integrationID string, pageSize int, pageToken string) ([]Workload, string, error) {
	ws, next, err := list(r.cfg.Store, workloads, integrationID, pageSize, pageToken, (*workloadRecord).workload)
	if err != nil {
		return nil, "", err
	}
	r.fillLastUsed(ctx, ws)
	return ws, next, nil
}
