// Package registry is the source of truth for partners, their integrations and the workloads that
// act for them. Every write is one store transaction that changes the entity, appends an audit
// record and queues the enforcement changes in the outbox, so none of the three can happen without
// the others; the write then waits for the outbox relay to publish the changes into the revoker's
// feed and returns the feed sequence they landed at.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/token"
)

const (
	bucketPartners     = "partners"     // partner id -> partnerRecord
	bucketIntegrations = "integrations" // integration id -> integrationRecord
	bucketWorkloads    = "workloads"    // workload id -> workloadRecord
	// The list indexes (see kind): "partner id/integration id" and "integration id/workload id".
	bucketIntegrationsByPartner  = "integrations_by_partner"
	bucketWorkloadsByIntegration = "workloads_by_integration"
	// bucketWorkloadKeys maps a key thumbprint to the workload it is registered for, so one key
	// never authenticates two workloads.
	bucketWorkloadKeys = "workload_keys"
	bucketAudit        = "audit" // big-endian counter -> AuditRecord
	// bucketPolicies holds policy versions under "partner id\x00^version" (see policyKey);
	// bucketPolicyHeads holds each partner's latest, live and shadow versions.
	bucketPolicies    = "policies"
	bucketPolicyHeads = "policy_heads"
	// bucketClientSecrets holds client secret records (hashes, never secrets) under
	// "workload id/secret id".
	bucketClientSecrets = "client_secrets"
	// bucketOffboardings holds each partner's offboarding record (offboard.go) under its id.
	bucketOffboardings = "offboardings"
)

// Schema is the layout of the registry's store. Layout 2 hash-chains the audit trail; opening a
// layout 1 store chains its existing records (chainAudit).
var Schema = store.Schema{
	Name:       "registry",
	Version:    2,
	Migrations: map[uint64]func(store.Tx) error{1: chainAudit},
	Buckets: []string{
		bucketPartners, bucketIntegrations, bucketWorkloads,
		bucketIntegrationsByPartner, bucketWorkloadsByIntegration, bucketWorkloadKeys,
		bucketAudit, outbox.Bucket, bucketPolicies, bucketPolicyHeads, bucketClientSecrets,
		bucketOffboardings,
	},
}

// outboxSource prefixes the idempotency keys of the registry's outbox entries.
const outboxSource = "registry"

// DefaultPublishTimeout is how long a write waits by default for the revoker to confirm its
// enforcement changes before it answers Unavailable (the write itself is committed either way).
const DefaultPublishTimeout = 5 * time.Second

// Config configures a Registry.
type Config struct {
	// Store keeps the registry's data; open it with Schema.
	Store store.Store
	// Relay publishes the registry's outbox into the revoker's feed. The caller runs it
	// (go relay.Run(ctx)) over the same Store.
	Relay *outbox.Relay
	// MaxCredentialTTL is the deployment's global maximum credential lifetime; no integration may
	// allow longer. Defaults to token.DefaultMaxLifetime.
	MaxCredentialTTL time.Duration
	// PublishTimeout bounds how long a write waits for the revoker's confirmation. Defaults to
	// DefaultPublishTimeout.
	PublishTimeout time.Duration
	// ContractCheckInterval bounds how long the contract-end scheduler (Run) sleeps between two
	// checks, besides waking at the next contract end it knows of. Defaults to
	// DefaultContractCheckInterval.
	ContractCheckInterval time.Duration
	// Revoker and Inventory let Offboard revoke a partner's credentials one by one and confirm
	// from the issuer's inventory that none is left (revokersvc.NewCredentialRevoker,
	// issuersvc.NewCredentialInventory). Without them Offboard is refused and the contract-end
	// scheduler leaves ended partners OFFBOARDING.
	Revoker   CredentialRevoker
	Inventory CredentialInventory
	// OffboardConcurrency is how many revocations an offboarding keeps in flight; defaults to
	// DefaultOffboardConcurrency.
	OffboardConcurrency int
	// Now returns the current time; defaults to time.Now. The contract-end scheduler reads it too,
	// so tests can move time.
	Now func() time.Time
	// Logger receives operational logs; defaults to slog.Default().
	Logger *slog.Logger
}

// Registry manages partners, integrations and workloads. It is safe for concurrent use: every
// read-check-write happens inside one store transaction.
type Registry struct {
	cfg Config
	// wake asks the contract-end scheduler to look again (a partner was created).
	wake chan struct{}
	// offboardMu runs offboardings one at a time (offboard.go).
	offboardMu sync.Mutex
}

// New returns a Registry over cfg.Store.
func New(cfg Config) (*Registry, error) {
	if cfg.Store == nil {
		return nil, errors.New("registry: Config.Store is required")
	}
	if cfg.Relay == nil {
		return nil, errors.New("registry: Config.Relay is required")
	}
	switch {
	case cfg.MaxCredentialTTL < 0:
		return nil, fmt.Errorf("registry: MaxCredentialTTL %s is negative", cfg.MaxCredentialTTL)
	case cfg.MaxCredentialTTL == 0:
		cfg.MaxCredentialTTL = token.DefaultMaxLifetime
	}
	switch {
	case cfg.PublishTimeout < 0:
		return nil, fmt.Errorf("registry: PublishTimeout %s is negative", cfg.PublishTimeout)
	case cfg.PublishTimeout == 0:
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	switch {
	case cfg.ContractCheckInterval < 0:
		return nil, fmt.Errorf("registry: ContractCheckInterval %s is negative", cfg.ContractCheckInterval)
	case cfg.ContractCheckInterval == 0:
		cfg.ContractCheckInterval = DefaultContractCheckInterval
	}
	if cfg.OffboardConcurrency <= 0 {
		cfg.OffboardConcurrency = DefaultOffboardConcurrency
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Registry{cfg: cfg, wake: make(chan struct{}, 1)}, nil
}

// now returns the current time in UTC without a monotonic reading, so that what a write returns
// equals what a later read decodes.
func (r *Registry) now() time.Time { return r.cfg.Now().UTC().Round(0) }

// change is what one write records besides the entity itself: its audit record and the events to
// publish, in order.
type change struct {
	audit  AuditRecord
	events []*treatyv1.Event
	// skip means there is nothing to do after all: no audit record, no events.
	skip bool
}

// commit runs fn in one store transaction, appends the audit record and queues the events fn
// returns in that same transaction, then waits for the last event to be published and returns its
// feed sequence. If the revoker does not confirm in time, the write stays committed and the
// relay's Unavailable error is returned: the events will be published, in order, later.
func (r *Registry) commit(ctx context.Context, fn func(tx store.Tx) (change, error)) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("registry: nothing written: %w", err)
	}
	last, err := r.write(fn)
	if err != nil || last == 0 {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	seq, err := r.cfg.Relay.Wait(wctx, last)
	if err != nil {
		r.cfg.Logger.Warn("registry: change committed, but the revoker has not confirmed it yet; it stays queued",
			"outbox_id", last, "err", err)
		return seq, unconfirmed{err}
	}
	return seq, nil
}

// unconfirmed marks the relay's error from commit: the write is durable and only its publication
// is pending. It is Unavailable like a store that cannot write, which is why committed looks for
// this mark rather than at the kind.
type unconfirmed struct{ error }

func (u unconfirmed) Unwrap() error { return u.error }

// write runs fn in one store transaction, appends the audit record and queues the events fn
// returns in that same transaction, and returns the id of the last outbox entry (0 if fn queued
// none). It does not wait for the relay.
func (r *Registry) write(fn func(tx store.Tx) (change, error)) (uint64, error) {
	var last uint64
	err := r.cfg.Store.Update(func(tx store.Tx) error {
		last = 0
		c, err := fn(tx)
		if err != nil {
			return err
		}
		if c.skip {
			return nil
		}
		if err := appendAudit(tx, c.audit); err != nil {
			return err
		}
		last, err = addEvents(tx, c.events)
		return err
	})
	if err != nil {
		if fail.KindOf(err) != fail.Internal {
			return 0, err
		}
		return 0, fmt.Errorf("registry: write: %w", err)
	}
	return last, nil
}

// addEvents queues events in the outbox and returns the last entry's id.
func addEvents(tx store.Tx, events []*treatyv1.Event) (uint64, error) {
	var last uint64
	for _, ev := range events {
		id, err := outbox.Add(tx, outboxSource, ev)
		if err != nil {
			return 0, err
		}
		last = id
	}
	return last, nil
}

// committed reports whether an error from commit still means the write is durable: only the
// relay's error (unconfirmed) comes after the transaction committed; a store that cannot write is
// Unavailable too, but nothing was written.
func committed(err error) bool { return err == nil || errors.As(err, new(unconfirmed)) }

// etag renders a record's revision as its opaque etag.
func etag(revision uint64) string { return fmt.Sprintf("r%d", revision) }
