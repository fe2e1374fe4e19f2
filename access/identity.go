package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/store"
)

// Identity is a caller Treaty knows: what an admin created, never its token.
type Identity struct {
	Name  string
	Roles []Role
	// Created is when it was created, CreatedBy who created it and Reason why.
	Created   time.Time
	CreatedBy string
	Reason    string
	// HasToken is whether it may authenticate with a token; every identity may authenticate
	// with a verified client certificate bearing its name.
	HasToken bool
	// TokenIssued is when its current token was issued; zero without one.
	TokenIssued time.Time
}

// identityRecord is an identity as stored.
type identityRecord struct {
	Name        string    `json:"name"`
	Roles       []Role    `json:"roles"`
	Created     time.Time `json:"created"`
	CreatedBy   string    `json:"created_by,omitempty"`
	Reason      string    `json:"reason"`
	TokenHash   []byte    `json:"token_sha256,omitempty"`
	TokenIssued time.Time `json:"token_issued,omitzero"`
}

func (r identityRecord) identity() Identity {
	return Identity{
		Name: r.Name, Roles: slices.Clone(r.Roles), Created: r.Created, CreatedBy: r.CreatedBy, Reason: r.Reason,
		HasToken: len(r.TokenHash) > 0, TokenIssued: r.TokenIssued,
	}
}

// checkRoles validates a role list: at least one role, each known, none twice.
func checkRoles(roles []Role) error {
	if len(roles) == 0 {
		return fail.Invalidf("roles", "roles is required: name at least one of admin, operator, auditor, pdp-client, subscriber, service")
	}
	for i, r := range roles {
		if _, err := ParseRole(string(r)); err != nil {
			return err
		}
		if slices.Contains(roles[:i], r) {
			return fail.Invalidf("roles", "role %q is named twice", r)
		}
	}
	return nil
}

// CreateIdentity creates the identity name with roles, created by actor for reason. With
// withToken it also issues the identity a token, returned here and never again (only its hash
// is kept); without, the identity authenticates only with a client certificate bearing its
// name.
func (a *Access) CreateIdentity(_ context.Context, name string, roles []Role, withToken bool, actor, reason string) (Identity, string, error) {
	if err := CheckName("name", name); err != nil {
		return Identity{}, "", err
	}
	if name == InternalName {
		return Identity{}, "", fail.Invalidf("name", "%q is reserved for the process's own services", name)
	}
	if err := checkRoles(roles); err != nil {
		return Identity{}, "", err
	}
	if err := checkWho(actor, reason); err != nil {
		return Identity{}, "", err
	}
	rec := identityRecord{Name: name, Roles: slices.Clone(roles), Created: a.now().UTC(), CreatedBy: actor, Reason: reason}
	var tok string
	if withToken {
		var err error
		if tok, err = NewToken(); err != nil {
			return Identity{}, "", err
		}
		h := hashToken(tok)
		rec.TokenHash, rec.TokenIssued = h[:], rec.Created
	}
	err := a.write(func(tx store.Tx) error {
		if tx.Get(bucketIdentities, []byte(name)) != nil {
			return fail.AlreadyExistsf("identity %q exists already", name)
		}
		return putIdentity(tx, rec)
	})
	if err != nil {
		return Identity{}, "", err
	}
	a.log.Info("identity created", "name", name, "roles", roles, "token", withToken, "actor", actor, "reason", reason)
	return rec.identity(), tok, nil
}

// RotateToken issues the identity name a new token, returned here and never again, and returns
// the identity as it now is; its old token, if any, stops working at once.
func (a *Access) RotateToken(_ context.Context, name, actor, reason string) (Identity, string, error) {
	if err := CheckName("name", name); err != nil {
		return Identity{}, "", err
	}
	if err := checkWho(actor, reason); err != nil {
		return Identity{}, "", err
	}
	tok, err := NewToken()
	if err != nil {
		return Identity{}, "", err
	}
	h := hashToken(tok)
	var rec identityRecord
	err = a.write(func(tx store.Tx) error {
		var err error
		if rec, err = getIdentity(tx, name); err != nil {
			return err
		}
		if len(rec.TokenHash) > 0 {
			if err := tx.Delete(bucketTokens, rec.TokenHash); err != nil {
				return err
			}
		}
		rec.TokenHash, rec.TokenIssued = h[:], a.now().UTC()
		return putIdentity(tx, rec)
	})
	if err != nil {
		return Identity{}, "", err
	}
	a.log.Info("identity token rotated", "name", name, "actor", actor, "reason", reason)
	return rec.identity(), tok, nil
}

// GetIdentity returns the identity name.
func (a *Access) GetIdentity(_ context.Context, name string) (Identity, error) {
	if err := CheckName("name", name); err != nil {
		return Identity{}, err
	}
	var rec identityRecord
	err := a.st.View(func(tx store.Tx) error {
		var err error
		rec, err = getIdentity(tx, name)
		return err
	})
	return rec.identity(), err
}

// ListIdentities returns every identity, by name. There are few: people and services, not
// partners' workloads.
func (a *Access) ListIdentities(_ context.Context) ([]Identity, error) {
	var out []Identity
	err := a.st.View(func(tx store.Tx) error {
		return tx.Scan(bucketIdentities, nil, nil, func(_, val []byte) (bool, error) {
			var rec identityRecord
			if err := json.Unmarshal(val, &rec); err != nil {
				return false, fmt.Errorf("decode identity: %w", err)
			}
			out = append(out, rec.identity())
			return true, nil
		})
	})
	return out, err
}

// DeleteIdentity deletes the identity name, deleted by actor for reason (required). Its token
// and certificate stop working when DeleteIdentity returns. The last identity holding the admin
// role cannot be deleted, so that someone can always manage access.
func (a *Access) DeleteIdentity(_ context.Context, name, actor, reason string) error {
	if err := CheckName("name", name); err != nil {
		return err
	}
	if err := checkWho(actor, reason); err != nil {
		return err
	}
	err := a.write(func(tx store.Tx) error {
		rec, err := getIdentity(tx, name)
		if err != nil {
			return err
		}
		if (Caller{Roles: rec.Roles}).Has(RoleAdmin) {
			// Counted in the transaction, not in the view: another replica may be deleting
			// the other admin at the same time, and one of the two must then fail.
			admins, err := countAdmins(tx)
			if err != nil {
				return err
			}
			if admins <= 1 {
				return fail.Preconditionf("identity %q is the last admin: create another admin before deleting it", name)
			}
		}
		if len(rec.TokenHash) > 0 {
			if err := tx.Delete(bucketTokens, rec.TokenHash); err != nil {
				return err
			}
		}
		return tx.Delete(bucketIdentities, []byte(name))
	})
	if err != nil {
		return err
	}
	a.log.Info("identity deleted", "name", name, "actor", actor, "reason", reason)
	return nil
}

// BootstrapName is the identity Bootstrap creates.
const BootstrapName = "admin"

// errBootstrapped abandons a bootstrap that found identities in the store after all: another
// replica sharing the store bootstrapped first.
var errBootstrapped = fail.AlreadyExistsf("the access store holds identities already")

// Bootstrap creates the identity "admin" (role admin) with a token and writes the token to path
// (mode 0600, one line) when the store has no identity yet; created is false (and token empty)
// otherwise, so every start may call it. The file is written (and synced) before the identity
// is committed: a crash in between leaves a token that does not work, and the next start
// bootstraps again, never an admin whose token is lost.
//
// If path already holds a Treaty token when the store is empty (an operator provisioned one
// admin token to several processes of a split deployment, or a crash came between the file and
// the commit), the admin identity adopts it: created is true and token empty, since the token is
// not new to anyone. A file readable by others than its owner is refused.
//
// With a store several replicas share, only the first replica's start finds it empty and
// creates the admin; every later replica (on its own data folder) finds the identities there and
// creates nothing, and says in its log whether its credential file, if any, holds a valid token,
// or where to get one. Two replicas bootstrapping at once create one admin: the second's commit
// finds the first's, and it removes the credential file it had just written, whose token would
// never work.
func (a *Access) Bootstrap(path string) (token string, created bool, err error) {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	if a.view.Load().count > 0 {
		a.bootstrappedElsewhere(path)
		return "", false, nil
	}
	tok, adopted, err := provisioned(path)
	if err != nil {
		return "", false, err
	}
	if !adopted {
		if tok, err = NewToken(); err != nil {
			return "", false, err
		}
		if err := writeSecretFile(path, tok+"\n"); err != nil {
			return "", false, fmt.Errorf("access: write the admin credential: %w", err)
		}
	}
	now := a.now().UTC()
	h := hashToken(tok)
	rec := identityRecord{
		Name: BootstrapName, Roles: []Role{RoleAdmin}, Created: now, CreatedBy: InternalName,
		Reason: "bootstrap: the first start on an empty data folder", TokenHash: h[:], TokenIssued: now,
	}
	err = a.writeLocked(func(tx store.Tx) error {
		// The whole bucket, not just the admin's key: on a shared store another replica may
		// have bootstrapped (and renamed or added admins) since this one opened it.
		empty := true
		if err := tx.Scan(bucketIdentities, nil, nil, func(_, _ []byte) (bool, error) {
			empty = false
			return false, nil
		}); err != nil {
			return err
		}
		if !empty {
			return errBootstrapped
		}
		return putIdentity(tx, rec)
	})
	if errors.Is(err, errBootstrapped) {
		if !adopted {
			os.Remove(path) // its token was never committed: leave no credential that cannot work
		}
		if err := a.reloadLocked(); err != nil {
			return "", false, fmt.Errorf("access: read identities: %w", err)
		}
		a.bootstrappedElsewhere(path)
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if adopted {
		a.log.Info("bootstrap: created the admin identity with the token already in its credential file", "name", BootstrapName, "credential_file", path)
		return "", true, nil
	}
	a.log.Info("bootstrap: created the admin identity", "name", BootstrapName, "credential_file", path)
	return tok, true, nil
}

// bootstrappedElsewhere says, on a shared store that held identities when this process started,
// what this replica's credential file is worth: another replica created the admin, and its token
// is in that replica's data folder. A store only this process writes had its identities from an
// earlier start, and there is nothing new to say.
func (a *Access) bootstrappedElsewhere(path string) {
	if !a.shared() {
		return
	}
	v := a.view.Load()
	_, admin := v.byName[BootstrapName]
	tok, present, err := provisioned(path)
	switch {
	case err != nil:
		a.log.Warn("bootstrap: the shared access store holds identities already; this replica's admin credential file is not usable",
			"credential_file", path, "err", err)
	case !present && admin:
		a.log.Info("bootstrap: the admin identity exists in the shared access store (another replica created it): none created here; "+
			"copy admin.credential from the data folder of the replica that created it, or use `treaty access` with an admin's credential",
			"name", BootstrapName, "credential_file", path)
	case !present:
		a.log.Info("bootstrap: the shared access store holds identities already (another replica created them): none created here; "+
			"use `treaty access` with an admin's credential", "credential_file", path)
	default:
		if c, ok := v.byToken[hashToken(tok)]; ok && c.Via == ViaToken {
			a.log.Info("bootstrap: the shared access store holds identities already; this replica's credential file holds a valid token",
				"identity", c.Name, "credential_file", path)
			return
		}
		a.log.Warn("bootstrap: the shared access store holds identities already, and this replica's credential file holds a token none of them has "+
			"(rotated, deleted, or from another deployment): copy admin.credential from the replica that created the admin, or use `treaty access rotate`",
			"credential_file", path)
	}
}

// provisioned reads the token an operator placed at path for the admin identity to adopt; a
// missing file is not an error (adopted false).
func provisioned(path string) (tok string, adopted bool, err error) {
	info, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("access: the admin credential file: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return "", false, fmt.Errorf("access: the admin credential file %s has mode %04o: others may read the token; chmod 600 it", path, perm)
	}
	if tok, err = ReadTokenFile(path); err != nil {
		return "", false, fmt.Errorf("access: the admin credential: %w; remove the file to have one created", err)
	}
	return tok, true, nil
}

// writeSecretFile writes content to path with mode 0600 through a synced temporary file and a
// rename, so the file is either whole or absent.
func writeSecretFile(path, content string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing left to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // make the rename durable; best effort where directories cannot be synced
		d.Close()
	}
	return nil
}

// checkWho validates the actor (optional) and reason (required) of a change to access.
func checkWho(actor, reason string) error {
	if err := registry.CheckActor("actor", actor); err != nil {
		return err
	}
	return registry.CheckReason("reason", reason)
}

// write runs fn in a durable transaction and, once it is committed, swaps in the new view, so
// that no authentication ever sees a change that is not durable. The view is read inside the
// transaction, so it is the state just committed, whatever other replicas wrote before.
func (a *Access) write(fn func(store.Tx) error) error {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	return a.writeLocked(fn)
}

func (a *Access) writeLocked(fn func(store.Tx) error) error {
	var v *view
	err := a.st.Update(func(tx store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		var err error
		v, err = loadView(tx, a.intHash)
		return err
	})
	if err != nil {
		if fail.KindOf(err) != fail.Internal {
			return err
		}
		return fail.Unavailablef(err, "the access store could not be written")
	}
	a.view.Store(v)
	return nil
}

// countAdmins counts the identities holding RoleAdmin.
func countAdmins(tx store.Tx) (int, error) {
	n := 0
	err := tx.Scan(bucketIdentities, nil, nil, func(_, val []byte) (bool, error) {
		var rec identityRecord
		if err := json.Unmarshal(val, &rec); err != nil {
			return false, fmt.Errorf("decode identity: %w", err)
		}
		if (Caller{Roles: rec.Roles}).Has(RoleAdmin) {
			n++
		}
		return true, nil
	})
	return n, err
}

func getIdentity(tx store.Tx, name string) (identityRecord, error) {
	var rec identityRecord
	val := tx.Get(bucketIdentities, []byte(name))
	if val == nil {
		return rec, fail.NotFoundf("identity %q not found", name)
	}
	if err := json.Unmarshal(val, &rec); err != nil {
		return rec, fmt.Errorf("decode identity %q: %w", name, err)
	}
	return rec, nil
}

func putIdentity(tx store.Tx, rec identityRecord) error {
	val, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := tx.Put(bucketIdentities, []byte(rec.Name), val); err != nil {
		return err
	}
	if len(rec.TokenHash) > 0 {
		return tx.Put(bucketTokens, rec.TokenHash, []byte(rec.Name))
	}
	return nil
}
