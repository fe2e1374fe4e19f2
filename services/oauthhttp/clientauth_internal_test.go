package oauthhttp

import (
	"crypto/tls"
	"crypto/x509"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// A client that authenticates by its TLS certificate alone (RFC 8705) reaches the issuer with its
// client_id; without a certificate, or without a client_id, it is refused before.
func TestClientAuthByCertificateAlone(t *testing.T) {
	form := url.Values{"client_id": {"mtls-bot"}, "grant_type": {"client_credentials"}}
	for _, tc := range []struct {
		name   string
		tls    *tls.ConnectionState
		form   url.Values
		wantOK bool
	}{
		{"certificate and client_id", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{}}}, form, true},
		{"no certificate", nil, form, false},
		{"certificate without client_id", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{}}}, url.Values{"grant_type": {"client_credentials"}}, false},
	} {
		r := httptest.NewRequest("POST", "/oauth2/token", strings.NewReader(tc.form.Encode()))
		r.TLS = tc.tls
		req, err := clientAuth(r, tc.form)
		if (err == nil) != tc.wantOK || (tc.wantOK && req.ClientID != "mtls-bot") {
			t.Errorf("%s: clientAuth = %+v, %v; want ok=%v", tc.name, req.ClientID, err, tc.wantOK)
		}
	}
}
