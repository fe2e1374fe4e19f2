// Package backup takes consistent copies of a Treaty process's stores into one file while it
// serves, and restores them into a data folder.
//
// A backup is a tar archive: one NAME.db file per store (each a consistent copy as of one
// transaction) and a MANIFEST.json naming them with their sizes and SHA-256 digests. It holds the
// issuer's signing keys, so it is written with mode 0600 on the server's own filesystem and never
// sent over the network.
//
// The stores are copied one after another, not at one instant. Callers list the revoker's store
// last: every change another store considers published (an outbox entry marked done) is then in
// the revoker's copy, and a change still queued in an outbox is published again after a restore,
// where the revoker's request ids make it land once.
package backup

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// Format names the archive layout; Restore refuses any other.
const Format = "treaty-backup/1"

const manifestName = "MANIFEST.json"

// Source is one store to copy.
type Source struct {
	// Name is the store's name, which is also its file name in the data folder (NAME.db).
	Name  string
	Store store.Store
	// Elsewhere, when set, says where a store that is not a file of this server lives (for
	// example "etcd, prefix /treaty/registry"): Write refuses to run, since such a store is
	// backed up with its cluster (`etcdctl snapshot save`), which a copy taken here could not be
	// consistent with.
	Elsewhere string
}

// Manifest describes a backup.
type Manifest struct {
	Format  string    `json:"format"`
	Created time.Time `json:"created"`
	Stores  []Entry   `json:"stores"`
}

// Entry is one store in a backup.
type Entry struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// Write copies every source, in order, into a new archive at path. The file must not exist; it
// appears only once complete and fsync'd, so a failed or interrupted backup leaves nothing that
// looks like a backup.
func Write(path string, sources []Source, now time.Time) (Manifest, error) {
	if !filepath.IsAbs(path) {
		return Manifest{}, fail.Invalidf("out_path", "out_path %q must be absolute: it names a file on the server", path)
	}
	if _, err := os.Lstat(path); err == nil {
		return Manifest{}, fail.Preconditionf("%s exists already; choose a new file, a backup never overwrites", path)
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return Manifest{}, fail.Preconditionf("folder %s does not exist on the server", dir)
	}
	for _, src := range sources {
		if src.Elsewhere != "" {
			return Manifest{}, fail.Preconditionf("the %s store is kept in %s, not in this server's data folder: back up the etcd cluster with `etcdctl snapshot save` (and the data folder's files, such as the decision log, with the server stopped)", src.Name, src.Elsewhere)
		}
	}
	// The stores are copied to scratch files first: a tar header needs each size up front.
	scratch, err := os.MkdirTemp(dir, ".treaty-backup-")
	if err != nil {
		return Manifest{}, fail.Unavailablef(err, "cannot write in %s", dir)
	}
	defer os.RemoveAll(scratch)

	m := Manifest{Format: Format, Created: now.UTC()}
	for _, src := range sources {
		if !namePattern.MatchString(src.Name) {
			return Manifest{}, fmt.Errorf("backup: bad store name %q", src.Name)
		}
		e, err := copyStore(filepath.Join(scratch, src.Name+".db"), src)
		if err != nil {
			return Manifest{}, fail.Unavailablef(err, "copying the %s store failed; no backup was written", src.Name)
		}
		m.Stores = append(m.Stores, e)
	}

	partial := filepath.Join(scratch, "backup.tar")
	if err := writeArchive(partial, scratch, m); err != nil {
		return Manifest{}, fail.Unavailablef(err, "writing the backup failed; no backup was written")
	}
	// Link rather than rename, so that a file created at path meanwhile is never replaced.
	if err := os.Link(partial, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return Manifest{}, fail.Preconditionf("%s exists already; choose a new file, a backup never overwrites", path)
		}
		return Manifest{}, fail.Unavailablef(err, "cannot create %s", path)
	}
	if err := syncDir(dir); err != nil {
		return Manifest{}, fail.Unavailablef(err, "the backup at %s may not survive a crash", path)
	}
	return m, nil
}

func copyStore(path string, src Source) (Entry, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return Entry{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := src.Store.Backup(io.MultiWriter(f, h))
	if err != nil {
		return Entry{}, err
	}
	return Entry{Name: src.Name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, f.Close()
}

func writeArchive(path, scratch string, m Manifest) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, e := range m.Stores {
		if err := addFile(tw, filepath.Join(scratch, e.Name+".db"), e.Name+".db", e.Size, m.Created); err != nil {
			return err
		}
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: manifestName, Mode: 0o600, Size: int64(len(raw)), ModTime: m.Created}); err != nil {
		return err
	}
	if _, err := tw.Write(raw); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

func addFile(tw *tar.Writer, path, name string, size int64, mod time.Time) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: mod}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
