// Package access knows who may call Treaty: the identities of callers, the roles they hold, the
// tokens they authenticate with, and the refusals of callers that failed. It knows nothing of
// gRPC; services/authn checks every call against it.
//
// Identities live in their own store (Schema): a bbolt file (access.db) that only its process
// writes, or, with several replicas behind one load balancer, a store they share (etcd), so that
// an identity created, rotated or deleted through any replica holds on all of them. A caller
// authenticates with a Treaty-issued token (opaque, "trt_" and 43 base64url characters of 32
// random bytes; only its SHA-256 is stored) or, over mutual TLS, with a verified client
// certificate whose name (first URI SAN, else subject CN) is an identity's name.
//
// Authentication is on the path of every decision (a PDP's Check goes through it at ~100k/s), so
// it reads an immutable in-memory view of the identities, keyed by token hash and by name, that
// every write replaces atomically after its durable commit: no store read, no lock, and no
// allocation beyond hashing the token. A deleted identity's token stops working here as soon as
// DeleteIdentity returns.
//
// # Several replicas
//
// When the store is shared (it implements store.Watcher, as etcd does), each Access also watches
// the identities and reloads its view whenever another replica changes them (and every
// ReloadEvery in case a watch stalls without failing). So another replica's write takes effect
// here within the watch's latency, milliseconds, not when the writer's call returns. A replica cut
// off from the store keeps authenticating with the identities it last saw (a deletion made
// meanwhile elsewhere does not reach it) until it reconnects: the watch notifies when it resumes,
// and the view reloads. Writes are transactions that read what they depend on (the last admin,
// the refusal log's last sequence), so concurrent writers on several replicas never undo one
// another. With a store only this process writes (bbolt) nothing is watched.
//
// Refusals (no or bad credential, missing role) are queued without blocking and written in
// batches, one durable transaction per batch, by a background writer; when the queue is full they
// are counted and dropped, with a warning at most once a minute, so a flood of bad calls cannot
// slow the refusals down or fill the disk (at most MaxRefusals are kept). Replicas sharing a
// store share one refusal log.
package access

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/store"
)

// Role is what an identity may do. An identity may hold several roles.
type Role string

// The roles. Which methods each allows is the method table of services/authn.
const (
	// RoleAdmin may call everything.
	RoleAdmin Role = "admin"
	// RoleOperator runs the kill switch and lifecycle holds (revoke, restore, suspend, resume)
	// and may read everything.
	RoleOperator Role = "operator"
	// RoleAuditor reads: the inventory, reports, the audit trail, decisions. It writes nothing.
	RoleAuditor Role = "auditor"
	// RolePDPClient asks for decisions: Check, CheckBatch, Envoy's ext_authz Check, AuthZEN.
	RolePDPClient Role = "pdp-client"
	// RoleSubscriber follows the revocation feed (RevocationService.Subscribe, and Snapshot to
	// resync) and nothing else.
	RoleSubscriber Role = "subscriber"
	// RoleService is what Treaty's own services hold when they call one another.
	RoleService Role = "service"
)

// Roles lists every role, in the order they are shown.
var Roles = []Role{RoleAdmin, RoleOperator, RoleAuditor, RolePDPClient, RoleSubscriber, RoleService}

// ParseRole returns the role named s, or an Invalid error naming "role".
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return "", invalidf("role", "role %q is not one of %s", clip(s), strings.Join(names, ", "))
}

const (
	bucketIdentities = "identities" // name -> identityRecord (JSON)
	bucketTokens     = "tokens"     // SHA-256 of a token -> name
	bucketRefusals   = "refusals"   // big-endian sequence -> refusalRecord (JSON)
)

// Schema is the layout of the access store: its own store (access.db, or its own prefix in
// etcd), so that identities stay apart from the registry's inventory and a service's store can be
// restored without touching who may call it.
var Schema = store.Schema{
	Name:    "access",
	Version: 1,
	Buckets: []string{bucketIdentities, bucketTokens, bucketRefusals},
}

// RefusalSchema is the layout of a store that keeps only refusals (Config.Refusals).
var RefusalSchema = store.Schema{Name: "refusals", Version: 1, Buckets: []string{bucketRefusals}}

// Config configures Access.
type Config struct {
	// Store keeps identities and, unless Refusals is set, refusals; open it with Schema.
	// Required. Close does not close it: whoever opened it does.
	Store store.Store
	// Refusals, if set, keeps the refusals instead of Store; open it with RefusalSchema. Where
	// Store is shared by replicas (etcd), each replica keeps its refusals in a local store: they
	// are written by callers who failed to authenticate, so a flood of them must not reach the
	// cluster that holds the revocation log.
	Refusals store.Store
	// Logger receives identity changes and warnings (never a token); defaults to slog.Default().
	Logger *slog.Logger
	// Now returns the current time for records; defaults to time.Now.
	Now func() time.Time
}

// Caller is an authenticated caller: the identity's name, its roles, and how it authenticated.
// Roles is shared with Access's view: do not modify it.
type Caller struct {
	Name  string
	Roles []Role
	// Via is how the caller authenticated: ViaToken, ViaCertificate or ViaInternal.
	Via string
}

// How a caller authenticated.
const (
	ViaToken       = "token"
	ViaCertificate = "certificate"
	ViaInternal    = "internal"
)

// Has reports whether the caller holds one of roles. An admin holds every role.
func (c Caller) Has(roles ...Role) bool {
	for _, held := range c.Roles {
		if held == RoleAdmin {
			return true
		}
		for _, r := range roles {
			if held == r {
				return true
			}
		}
	}
	return false
}

// InternalName is the name of the in-process caller that InternalToken authenticates. No
// identity may take it.
const InternalName = "treaty-internal"

// Access holds the identities and records refusals.
type Access struct {
	st        store.Store
	refusalSt store.Store // where refusals are kept: st unless Config.Refusals
	log       *slog.Logger
	now       func() time.Time

	view atomic.Pointer[view] // what authentication reads; replaced after every write

	writeMu  sync.Mutex // orders writes and their view swaps
	internal string     // the in-memory token of InternalName
	intHash  [32]byte

	refusals refusalQueue

	stopFollow context.CancelFunc // ends follow; nil when the store is not shared
	followDone chan struct{}      // closed when follow has ended
}

// ReloadEvery is how often an Access on a shared store reloads its view without a notification
// from the store's watch, in case the watch stalls without failing.
const ReloadEvery = 10 * time.Second

// reloadRetry is how soon a failed reload (the store unreachable) is tried again.
const reloadRetry = time.Second

// Open reads the identities from cfg.Store and starts the refusal writer; Close stops it.
func Open(cfg Config) (*Access, error) {
	if cfg.Store == nil {
		return nil, errors.New("access: Config.Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Access{st: cfg.Store, refusalSt: cfg.Refusals, log: cfg.Logger.With("component", "access"), now: cfg.Now}
	if a.refusalSt == nil {
		a.refusalSt = cfg.Store
	}
	tok, err := NewToken()
	if err != nil {
		return nil, err
	}
	a.internal, a.intHash = tok, hashToken(tok)
	if err := a.reloadLocked(); err != nil {
		return nil, fmt.Errorf("access: read identities: %w", err)
	}
	a.refusals.start(a)
	if w, ok := a.st.(store.Watcher); ok {
		ctx, cancel := context.WithCancel(context.Background())
		a.stopFollow, a.followDone = cancel, make(chan struct{})
		go func() {
			defer close(a.followDone)
			store.Follow(ctx, w, bucketIdentities, ReloadEvery, reloadRetry, a.reload, a.log, "the callers' identities (authenticating with those last read)")
		}()
	}
	return a, nil
}

// Close stops following the shared store's identities, writes the refusals still queued and
// stops the writer. It does not close the store.
func (a *Access) Close() error {
	if a.stopFollow != nil {
		a.stopFollow()
		<-a.followDone
	}
	a.refusals.stop()
	return nil
}

// shared reports whether other processes may write the store (it is a store.Watcher).
func (a *Access) shared() bool {
	_, ok := a.st.(store.Watcher)
	return ok
}

// reload replaces the view with the identities as the store now holds them. It holds writeMu,
// as a local write does from its transaction to its swap, so a reload never replaces a newer
// view with an older one: whichever of the two takes the lock second reads a state at least as
// new as the first's.
func (a *Access) reload() error {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	return a.reloadLocked()
}

func (a *Access) reloadLocked() error {
	var v *view
	if err := a.st.View(func(tx store.Tx) error {
		var err error
		v, err = loadView(tx, a.intHash)
		return err
	}); err != nil {
		return err // a view from a failed read may be partial: keep the one we have
	}
	a.view.Store(v)
	return nil
}

// InternalToken returns a token valid only in this process's memory, for role service: the
// services of one process calling each other through its own listener use it. It changes with
// every Open.
func (a *Access) InternalToken() string { return a.internal }
