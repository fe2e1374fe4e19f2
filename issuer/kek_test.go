package issuer_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/logtest"
	"github.com/treaty-dev/treaty/issuer"
)

// debugLogger logs everything into logs.
func debugLogger(logs *logtest.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// leaks reports whether blob holds secret in the clear: raw, or in standard or URL base64 (the
// store keeps JSON, where bytes are base64) at whatever offset the secret sits in a longer
// encoded value.
func leaks(blob, secret []byte) bool {
	if bytes.Contains(blob, secret) {
		return true
	}
	for off := range 3 {
		aligned := secret[off:]
		aligned = aligned[:len(aligned)/3*3]
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			if bytes.Contains(blob, []byte(enc.EncodeToString(aligned))) {
				return true
			}
		}
	}
	return false
}

// TestPrivateKeysEncryptedAtRest: with no KEK configured, the issuer generates one into the data
// folder (0600, logged once without the key), and the store's file holds no private key material
// of the active or next key, for each algorithm.
func TestPrivateKeysEncryptedAtRest(t *testing.T) {
	for _, alg := range issuer.SigningAlgorithms() {
		t.Run("alg="+alg, func(t *testing.T) {
			t.Parallel()
			logs := &logtest.Buffer{}
			e := newEnv(t, func(c *issuer.Config) { c.SigningAlgorithm, c.Logger = alg, debugLogger(logs) })
			e.issue(e.request())
			// Bring the next key in too.
			e.clock.Advance(issuer.DefaultKeyRotation - issuer.DefaultKeyPrepublish + time.Minute)
			if err := issuer.Tick(e.iss); err != nil {
				t.Fatal(err)
			}
			secrets, err := issuer.KeySecrets(e.iss)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]int{"EdDSA": 4, "ES256": 4, "RS256": 8}[alg]; len(secrets) != want {
				t.Fatalf("%d secrets, want %d (active and next keys)", len(secrets), want)
			}
			e.reopen() // a restart reads the KEK it generated, and generates none
			e.stop()

			raw, err := os.ReadFile(e.path)
			if err != nil {
				t.Fatal(err)
			}
			for n, s := range secrets {
				if leaks(raw, s) {
					t.Fatalf("the store's file holds private key material (secret %d) in the clear", n)
				}
			}
			kekPath := filepath.Join(filepath.Dir(e.path), issuer.KEKFileName)
			fi, err := os.Stat(kekPath)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("generated KEK file has mode %04o, want 0600", fi.Mode().Perm())
			}
			kek, err := os.ReadFile(kekPath)
			if err != nil {
				t.Fatal(err)
			}
			out := logs.String()
			if n := strings.Count(out, "generated a key-encryption key"); n != 1 {
				t.Fatalf("the KEK generation was logged %d times, want once:\n%s", n, out)
			}
			if strings.Contains(out, strings.TrimSpace(string(kek))) {
				t.Fatal("the logs hold the KEK")
			}
			for n, s := range secrets {
				if leaks([]byte(out), s) {
					t.Fatalf("the logs hold private key material (secret %d)", n)
				}
			}
		})
	}
}

// TestPlaintextStoreEncryptedAtOpen: a store written with private keys in plaintext (by the issuer
// before keys were encrypted, or by one given no KEK) has them encrypted when it is opened with a
// KEK, and the same key signs on, its schedule starting from its creation.
func TestPlaintextStoreEncryptedAtOpen(t *testing.T) {
	logs := &logtest.Buffer{}
	e := newEnv(t, func(c *issuer.Config) { c.DataDir, c.Logger = "", debugLogger(logs) })
	if !strings.Contains(logs.String(), "private signing keys are stored unencrypted") {
		t.Fatalf("no warning about the unencrypted keys:\n%s", logs.String())
	}
	key := e.activeKey()
	before := e.issue(e.request())
	secrets, err := issuer.KeySecrets(e.iss)
	if err != nil {
		t.Fatal(err)
	}
	if err := issuer.MakeLegacy(e.st); err != nil { // as written by the issuer before this one
		t.Fatal(err)
	}
	e.stop()
	raw, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	if !leaks(raw, secrets[0]) {
		t.Fatal("the plaintext store does not hold its key in the clear: this test would prove nothing")
	}

	e.cfg.DataDir = filepath.Dir(e.path)
	e.start(true)
	if k := e.activeKey(); k.Kid != key.Kid || !k.Activated.Equal(k.Created) {
		t.Fatalf("after encryption the active key is %s activated at %s, want %s, activated when created (%s)", k.Kid, k.Activated, key.Kid, k.Created)
	}
	plain, sealed, err := issuer.StoredPrivate(e.st, key.Kid)
	if err != nil || plain || !sealed {
		t.Fatalf("stored private key: plaintext %v, sealed %v (%v); want sealed only", plain, sealed, err)
	}
	if !strings.Contains(logs.String(), "encrypted a signing key stored in plaintext") {
		t.Fatalf("the migration was not logged:\n%s", logs.String())
	}
	after := e.issue(e.request())
	if after.Credential.Kid != key.Kid {
		t.Fatalf("signed by %s after the migration, want %s", after.Credential.Kid, key.Kid)
	}
	for _, tok := range []string{before.Token, after.Token} {
		if got := e.world.Check(tok, "invoices:read", audience, 0); got != "granted" {
			t.Fatalf("the PDP says %s", got)
		}
	}
	// Opened again without any KEK, the store refuses rather than run without its keys.
	e.stop()
	e.cfg.DataDir = ""
	err = e.tryStart(true)
	if err == nil || !strings.Contains(err.Error(), "encrypted with key-encryption key") {
		t.Fatalf("opening an encrypted store without a KEK: %v", err)
	}
}

func newKEK(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKEKSources covers the ways of giving the KEK and every way of getting it wrong: each is
// refused at start with a message that says what to do and never quotes a key.
func TestKEKSources(t *testing.T) {
	k1, k2 := newKEK(t), newKEK(t)
	b1, b2 := base64.StdEncoding.EncodeToString(k1), base64.StdEncoding.EncodeToString(k2)
	t.Setenv(issuer.KEKEnv, b1)
	e := newEnv(t)
	kid := e.activeKey().Kid
	e.stop()
	if _, err := os.Stat(filepath.Join(filepath.Dir(e.path), issuer.KEKFileName)); !os.IsNotExist(err) {
		t.Fatalf("a KEK file was generated although %s was set (%v)", issuer.KEKEnv, err)
	}
	dir := t.TempDir()
	file := func(name string, content []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		env  string
		file string
		want string // in the error; empty for a start that succeeds
	}{
		{"wrong KEK in the environment", b2, "", "encrypted with key-encryption key"},
		{"malformed environment value", "not base64!", "", "must be the standard base64 of 32 bytes"},
		{"short environment value", base64.StdEncoding.EncodeToString(k1[:16]), "", "must be the standard base64 of 32 bytes"},
		{"no KEK, none in the data folder", "", "", "is missing"},
		{"file readable by others", "", file("open.kek", []byte(b1+"\n"), 0o644), "chmod 600"},
		{"file writable by the group", "", file("group.kek", []byte(b1), 0o620), "chmod 600"},
		{"missing file", "", filepath.Join(dir, "absent.kek"), "no such file"},
		{"file with the wrong KEK", "", file("wrong.kek", []byte(b2+"\n"), 0o600), "encrypted with key-encryption key"},
		{"file of the wrong size", "", file("short.kek", k1[:31], 0o600), "must hold 32 bytes"},
		{"both environment and file", b1, file("both.kek", []byte(b1), 0o600), "set one"},
		{"right KEK in base64 in a 0600 file", "", file("good.kek", []byte(b1+"\n"), 0o600), ""},
		{"right KEK raw in a 0400 file", "", file("raw.kek", k1, 0o400), ""},
		{"right KEK in the environment", b1, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(issuer.KEKEnv, tc.env)
			e.cfg.KEKFile = tc.file
			err := e.tryStart(true)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := e.activeKey().Kid; got != kid {
					t.Fatalf("active key %s, want %s", got, kid)
				}
				e.issue(e.request())
				e.stop()
				return
			}
			if err == nil {
				e.stop()
				t.Fatalf("the issuer started; want an error with %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			for _, secret := range []string{b1, b2, tc.env} {
				if secret != "" && strings.Contains(err.Error(), secret) {
					t.Fatalf("error %q quotes a key", err)
				}
			}
		})
	}
}
