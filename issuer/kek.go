package issuer

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KEKEnv is the environment variable that may hold the key-encryption key (KEK) the issuer
// encrypts its private signing keys with in its store: the standard base64 of 32 random bytes
// (for example `head -c32 /dev/urandom | base64`).
const KEKEnv = "TREATY_KEK"

// KEKFileName is the file in Config.DataDir where the issuer keeps the KEK it generates on first
// start when no KEK is configured.
const KEKFileName = "issuer.kek"

// kekSize is the size of a KEK: an AES-256 key.
const kekSize = 32

// kek is a key-encryption key: AES-256-GCM, and an id that tells which KEK sealed a key without
// revealing anything about it.
type kek struct {
	id   string
	aead cipher.AEAD
}

func newKEK(key []byte) (*kek, error) {
	if len(key) != kekSize {
		return nil, fmt.Errorf("a key-encryption key is %d bytes, not %d", kekSize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("treaty issuer kek id\x00"), key...))
	return &kek{id: hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// sealedKey is a private key encrypted under a KEK.
type sealedKey struct {
	// KEK is the id of the KEK that sealed it.
	KEK        string `json:"kek"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

// sealAAD binds a sealed private key to its kid, so a sealed key copied into another record does
// not open.
func sealAAD(kid string) []byte { return append([]byte("treaty issuer signing key\x00"), kid...) }

func (k *kek) seal(kid string, plain []byte) (*sealedKey, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return &sealedKey{KEK: k.id, Nonce: nonce, Ciphertext: k.aead.Seal(nil, nonce, plain, sealAAD(kid))}, nil
}

func (k *kek) open(kid string, s *sealedKey) ([]byte, error) {
	if s.KEK != k.id {
		return nil, wrongKEK(s.KEK, k.id)
	}
	plain, err := k.aead.Open(nil, s.Nonce, s.Ciphertext, sealAAD(kid))
	if err != nil {
		return nil, fmt.Errorf("the private half of signing key %s does not decrypt with key-encryption key %s: the store is damaged or was tampered with", kid, k.id)
	}
	return plain, nil
}

func wrongKEK(stored, configured string) error {
	return fmt.Errorf("the signing keys in this store are encrypted with key-encryption key %s, but the configured one is %s: "+
		"configure the key-encryption key this store was written with (the issuer's KEK file, %s, or %s in the data folder)",
		stored, configured, KEKEnv, KEKFileName)
}

// kekPath is where the issuer keeps a KEK it generates in data folder dir.
func kekPath(dir string) string { return filepath.Join(dir, KEKFileName) }

// kekSource is where the KEK comes from, as Config describes it.
type kekSource struct {
	env     string // the value of KEKEnv, if set
	file    string // Config.KEKFile
	dataDir string // Config.DataDir
}

// resolveKEK finds the KEK: from the environment variable, from Config.KEKFile, or from the file
// in the data folder, which it generates if missing and the store holds no sealed key (stored is
// the id of the KEK the store's keys are sealed with, or empty). It returns nil, without error,
// only when nothing at all is configured and the store holds no sealed key: the caller keeps
// keys in plaintext then, with a warning. The bool reports a KEK generated now.
func resolveKEK(src kekSource, stored string) (*kek, bool, error) {
	var (
		key []byte
		err error
	)
	switch {
	case src.env != "" && src.file != "":
		return nil, false, fmt.Errorf("both %s and a KEK file (%s) are set; set one", KEKEnv, src.file)
	case src.env != "":
		key, err = base64.StdEncoding.DecodeString(src.env)
		if err != nil || len(key) != kekSize {
			// Never quote the value: it is (meant to be) a secret.
			return nil, false, fmt.Errorf("%s must be the standard base64 of %d bytes", KEKEnv, kekSize)
		}
	case src.file != "":
		if key, err = readKEKFile(src.file); err != nil {
			return nil, false, err
		}
	case src.dataDir != "":
		path := kekPath(src.dataDir)
		key, err = readKEKFile(path)
		if errors.Is(err, fs.ErrNotExist) && stored == "" {
			k, err := generateKEKFile(path)
			return k, err == nil, err
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, fmt.Errorf("the signing keys in this store are encrypted with key-encryption key %s, but %s is missing: "+
				"restore it, or set %s or the issuer's KEK file", stored, path, KEKEnv)
		}
		if err != nil {
			return nil, false, err
		}
	default:
		if stored != "" {
			return nil, false, fmt.Errorf("the signing keys in this store are encrypted with key-encryption key %s, but none is configured: "+
				"set %s, the issuer's KEK file or its data folder", stored, KEKEnv)
		}
		return nil, false, nil
	}
	k, err := newKEK(key)
	if err != nil {
		return nil, false, err
	}
	if stored != "" && stored != k.id {
		return nil, false, wrongKEK(stored, k.id)
	}
	return k, false, nil
}

// readKEKFile reads a KEK file: 32 raw bytes, or their standard base64 (what generateKEKFile
// writes). It refuses a file that anyone but its owner may read or write.
func readKEKFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("key-encryption key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key-encryption key file %s has mode %04o; it must be readable by its owner only (chmod 600 %s)", path, perm, path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key file: %w", err)
	}
	if len(raw) == kekSize {
		return raw, nil
	}
	key, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(raw)))
	if err != nil || len(key) != kekSize {
		return nil, fmt.Errorf("key-encryption key file %s must hold %d bytes, raw or in standard base64", path, kekSize)
	}
	return key, nil
}

// generateKEKFile creates a fresh KEK in a new 0600 file at path and makes it durable before any
// key is sealed with it: a sealed key whose KEK was lost in a crash could never be opened.
func generateKEKFile(path string) (*kek, error) {
	key := make([]byte, kekSize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	k, err := newKEK(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create key-encryption key file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create key-encryption key file: %w", err)
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("write key-encryption key file %s: %w", path, err)
	}
	return k, nil
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
