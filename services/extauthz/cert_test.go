package extauthz

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net/url"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// The thumbprint a certificate-bound token's cnf names (RFC 8705 x5t#S256) comes from Envoy's
// source certificate, or from x-forwarded-client-cert when the proxy is trusted to set it.
func TestCertThumbprint(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "acme-bot"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	urlPEM := url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))

	attrs := func(source, xfcc string) *authv3.AttributeContext {
		a := &authv3.AttributeContext{Source: &authv3.AttributeContext_Peer{Certificate: source},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Headers: map[string]string{}}}}
		if xfcc != "" {
			a.Request.Http.Headers["x-forwarded-client-cert"] = xfcc
		}
		return a
	}
	tests := []struct {
		name  string
		attrs *authv3.AttributeContext
		trust bool
		want  string
	}{
		{"source certificate", attrs(urlPEM, ""), false, want},
		{"source wins over the header", attrs(urlPEM, "Hash="+hex.EncodeToString(make([]byte, 32))), true, want},
		{"xfcc hash", attrs("", `By=spiffe://x;Hash=`+hex.EncodeToString(sum[:])+`;Subject="CN=acme-bot,O=Acme"`), true, want},
		{"xfcc cert, last element", attrs("", `Hash=00;Subject="a,b",Cert="`+urlPEM+`"`), true, want},
		{"xfcc untrusted", attrs("", "Hash="+hex.EncodeToString(sum[:])), false, ""},
		{"none", attrs("", ""), true, ""},
		{"not a certificate", attrs(url.QueryEscape("-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n"), ""), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := certThumbprint(tt.attrs, tt.trust); got != tt.want {
				t.Errorf("certThumbprint = %q, want %q", got, tt.want)
			}
		})
	}
}
