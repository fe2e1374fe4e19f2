package issuer

import (
	"bytes"
	"strings"
	"testing"
)

// TestSealBindsKid: a sealed private key opens only under its own kid and with the KEK that
// sealed it, so a sealed value copied into another key's record, or a store opened with another
// KEK, fails with a clear error instead of yielding a wrong key.
func TestSealBindsKid(t *testing.T) {
	k1, err := newKEK(bytes.Repeat([]byte{1}, kekSize))
	if err != nil {
		t.Fatal(err)
	}
	k2, err := newKEK(bytes.Repeat([]byte{2}, kekSize))
	if err != nil {
		t.Fatal(err)
	}
	if k1.id == k2.id || len(k1.id) != 16 {
		t.Fatalf("KEK ids %q and %q", k1.id, k2.id)
	}
	secret := []byte("a private key")
	s, err := k1.seal("kid-a", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(s.Ciphertext, secret) {
		t.Fatal("the sealed key holds the plaintext")
	}
	if got, err := k1.open("kid-a", s); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open = %q, %v", got, err)
	}
	if _, err := k1.open("kid-b", s); err == nil || !strings.Contains(err.Error(), "tampered") {
		t.Fatalf("opened under another kid: %v", err)
	}
	if _, err := k2.open("kid-a", s); err == nil || !strings.Contains(err.Error(), k1.id) || !strings.Contains(err.Error(), k2.id) {
		t.Fatalf("opened with another KEK: %v", err)
	}
	again, err := k1.seal("kid-a", secret)
	if err != nil || bytes.Equal(again.Nonce, s.Nonce) {
		t.Fatalf("two seals share a nonce (%v)", err)
	}
	if _, err := newKEK(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte KEK was accepted")
	}
}
