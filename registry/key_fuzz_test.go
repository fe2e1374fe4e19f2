package registry

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/fail"
)

// FuzzParsePublicKey feeds the workload key parser arbitrary text: it never panics, refuses with
// an INVALID_ARGUMENT-kind error that does not echo the input (it may be a private key), and a key
// it accepts reads back unchanged from its own canonical PEM.
func FuzzParsePublicKey(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	good := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	privDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	f.Add(good)
	f.Add(good + good)
	f.Add(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})))
	f.Add(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der[:20]})))
	f.Add("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		k, err := ParsePublicKey("public_key_pem", text)
		if err != nil {
			if fail.KindOf(err) != fail.Invalid {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			// The fixed advice may happen to contain a short input; what is said about the input
			// itself must not.
			said := strings.ReplaceAll(err.Error(), howToMakeKey, "")
			if body := strings.TrimSpace(text); len(body) >= 24 && strings.Contains(said, body) {
				t.Fatalf("the error echoes the input: %v", err)
			}
			return
		}
		again, err := ParsePublicKey("public_key_pem", k.PublicKeyPEM)
		if err != nil || again != k {
			t.Fatalf("canonical PEM does not read back: %+v %v, want %+v", again, err, k)
		}
		if _, err := k.PublicKey(); err != nil {
			t.Fatalf("accepted key does not verify against its own id: %v", err)
		}
	})
}
