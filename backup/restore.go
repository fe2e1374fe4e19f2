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
	"strings"
	"time"

	"github.com/treaty-dev/treaty/fail"
)

// maxStoreSize bounds one store in an archive, so a damaged header cannot fill the disk.
const maxStoreSize = 64 << 30

// Restore unpacks the backup in file into dataDir, after checking every store against the
// manifest. Store files already in dataDir are refused unless moveAside is set; then they are moved
// into dataDir/pre-restore-TIME, never deleted. Nothing in dataDir changes unless the whole archive
// checks out. The server must not be running on dataDir.
func Restore(file, dataDir string, moveAside bool, now time.Time) (Manifest, error) {
	f, err := os.Open(file)
	if err != nil {
		return Manifest{}, fail.NotFoundf("cannot open the backup %s: %v", file, err)
	}
	defer f.Close()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return Manifest{}, fail.Unavailablef(err, "cannot create the data folder %s", dataDir)
	}
	stage, err := os.MkdirTemp(dataDir, ".treaty-restore-")
	if err != nil {
		return Manifest{}, fail.Unavailablef(err, "cannot write in %s", dataDir)
	}
	defer os.RemoveAll(stage)

	m, got, err := unpack(f, stage)
	if err != nil {
		return Manifest{}, fail.Preconditionf("%s is not a usable Treaty backup: %v", file, err)
	}
	if err := verify(m, got); err != nil {
		return Manifest{}, fail.Preconditionf("%s is not a usable Treaty backup: %v", file, err)
	}

	var present []string
	for _, e := range m.Stores {
		if _, err := os.Lstat(filepath.Join(dataDir, e.Name+".db")); err == nil {
			present = append(present, e.Name+".db")
		}
	}
	if len(present) > 0 {
		if !moveAside {
			return Manifest{}, fail.Preconditionf("%s already holds %s; restore into an empty folder, or move them aside (--move-aside)",
				dataDir, strings.Join(present, ", "))
		}
		aside := filepath.Join(dataDir, "pre-restore-"+now.UTC().Format("20060102T150405Z"))
		if err := os.Mkdir(aside, 0o700); err != nil {
			return Manifest{}, fail.Unavailablef(err, "cannot create %s", aside)
		}
		for _, name := range present {
			if err := os.Rename(filepath.Join(dataDir, name), filepath.Join(aside, name)); err != nil {
				return Manifest{}, fail.Unavailablef(err, "cannot move %s aside", name)
			}
		}
	}
	for _, e := range m.Stores {
		if err := os.Rename(filepath.Join(stage, e.Name+".db"), filepath.Join(dataDir, e.Name+".db")); err != nil {
			return Manifest{}, fail.Unavailablef(err, "cannot put %s.db in place", e.Name)
		}
	}
	if err := syncDir(dataDir); err != nil {
		return Manifest{}, fail.Unavailablef(err, "the restored files in %s may not survive a crash", dataDir)
	}
	return m, nil
}

// unpack writes each store file of the archive into stage and returns the manifest and what was
// found (name -> entry as computed).
func unpack(r io.Reader, stage string) (Manifest, map[string]Entry, error) {
	var (
		m     Manifest
		haveM bool
		got   = map[string]Entry{}
	)
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return m, nil, err
		}
		if h.Typeflag != tar.TypeReg {
			return m, nil, fmt.Errorf("entry %q is not a regular file", h.Name)
		}
		if h.Name == manifestName {
			if haveM || h.Size > 1<<20 {
				return m, nil, errors.New("bad manifest")
			}
			if err := json.NewDecoder(io.LimitReader(tr, h.Size)).Decode(&m); err != nil {
				return m, nil, fmt.Errorf("manifest: %w", err)
			}
			haveM = true
			continue
		}
		name, ok := strings.CutSuffix(h.Name, ".db")
		if !ok || !namePattern.MatchString(name) {
			return m, nil, fmt.Errorf("unexpected entry %q", h.Name)
		}
		if _, dup := got[name]; dup || h.Size < 0 || h.Size > maxStoreSize {
			return m, nil, fmt.Errorf("entry %q repeated or too large", h.Name)
		}
		e, err := stageFile(filepath.Join(stage, h.Name), name, tr, h.Size)
		if err != nil {
			return m, nil, err
		}
		got[name] = e
	}
	if !haveM {
		return m, nil, errors.New("no manifest")
	}
	return m, got, nil
}

func stageFile(path, name string, r io.Reader, size int64) (Entry, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return Entry{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, size))
	if err != nil {
		return Entry{}, err
	}
	if err := f.Sync(); err != nil {
		return Entry{}, err
	}
	return Entry{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, f.Close()
}

func verify(m Manifest, got map[string]Entry) error {
	if m.Format != Format {
		return fmt.Errorf("format %q, this binary reads %q", m.Format, Format)
	}
	if len(m.Stores) == 0 {
		return errors.New("the manifest names no store")
	}
	for _, want := range m.Stores {
		e, ok := got[want.Name]
		switch {
		case !ok:
			return fmt.Errorf("the %s store is missing", want.Name)
		case e != want:
			return fmt.Errorf("the %s store does not match the manifest (size or SHA-256 differ): the file is damaged", want.Name)
		}
		delete(got, want.Name)
	}
	for name := range got {
		return fmt.Errorf("the %s store is not in the manifest", name)
	}
	return nil
}
