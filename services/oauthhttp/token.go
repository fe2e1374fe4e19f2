package oauthhttp

import (
	"cmp"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/issuer"
)

// AccessTokenType is the RFC 8693 token type of every token issued here.
const AccessTokenType = "urn:ietf:params:oauth:token-type:access_token"

// tokenResponse is the RFC 6749 §5.1 success response (with RFC 8693's issued_token_type for an
// exchange).
type tokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope"`
}

// token serves POST /oauth2/token.
func (h *Handler) token(w http.ResponseWriter, r *http.Request) {
	form, err := h.readForm(w, r)
	if err != nil {
		h.fail(w, err)
		return
	}
	client, err := h.client(r, form)
	if err != nil {
		h.fail(w, err)
		return
	}
	var (
		out      issuer.Issued
		exchange bool
	)
	switch gt := form.Get("grant_type"); gt {
	case "client_credentials":
		req := client
		if req.Scopes, err = scopes(form); err == nil {
			req.Audience, err = audience(form)
		}
		if err != nil {
			h.fail(w, err)
			return
		}
		out, err = h.iss.Issue(r.Context(), req)
	case GrantTypeTokenExchange:
		if h.cfg.TokenExchange == nil {
			writeError(w, http.StatusBadRequest, errUnsupportedGrantType, "token exchange is not enabled on this server")
			return
		}
		exchange = true
		out, err = h.cfg.TokenExchange(r.Context(), ExchangeRequest{Client: client, Form: form})
	case "":
		writeError(w, http.StatusBadRequest, errInvalidRequest, "grant_type is required")
		return
	default:
		supported := "client_credentials"
		if h.cfg.TokenExchange != nil {
			supported += ", " + GrantTypeTokenExchange
		}
		writeError(w, http.StatusBadRequest, errUnsupportedGrantType, "supported grant types: "+supported)
		return
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	c := out.Credential
	resp := tokenResponse{
		AccessToken: out.Token, TokenType: cmp.Or(out.TokenType, issuer.TokenTypeBearer), Scope: strings.Join(c.Scopes, " "),
		ExpiresIn: int64(c.ExpireTime.Sub(h.cfg.Now()).Seconds()),
	}
	resp.ExpiresIn = max(resp.ExpiresIn, 1)
	if exchange {
		resp.IssuedTokenType = AccessTokenType
	}
	writeJSON(w, http.StatusOK, resp)
}

// readForm reads a bounded application/x-www-form-urlencoded body. Parameters in the query
// string are refused (they end up in access logs) and so are repeated parameters (RFC 6749 §3.2),
// except resource (RFC 8707 allows several; audience() refuses more than one).
func (h *Handler) readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if r.URL.RawQuery != "" {
		return nil, fail.Invalidf("query", "send the parameters in the request body, not in the URL")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, fail.Invalidf("content_type", "the body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, fail.Invalidf("body", "the request body is larger than %d bytes", h.cfg.MaxBodyBytes)
		}
		return nil, fail.Invalidf("body", "the request body is not a valid form")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 && k != "resource" {
			return nil, fail.Invalidf(k, "parameter %s is repeated; send it once", k)
		}
	}
	return r.PostForm, nil
}

// client collects the client's authentication (clientAuth) and what the connection carries (the
// TLS client certificate chain, a DPoP proof: proofOfPossession), then lets Config.Transport add
// more.
func (h *Handler) client(r *http.Request, form url.Values) (issuer.Request, error) {
	req, err := clientAuth(r, form)
	if err != nil {
		return req, err
	}
	if err := h.proofOfPossession(r, &req); err != nil {
		return req, err
	}
	if h.cfg.Transport == nil {
		return req, nil
	}
	return req, h.cfg.Transport(r, &req)
}

// proofOfPossession adds the client's TLS certificate chain (mTLS client authentication and
// certificate-bound tokens, RFC 8705) and its DPoP proof (RFC 9449) to req, with the method and
// the token endpoint's public URL that a proof's htm and htu must name. The URL is the issuer's
// configured one, never one built from the request's Host header.
func (h *Handler) proofOfPossession(r *http.Request, req *issuer.Request) error {
	if r.TLS != nil {
		req.ClientCertificates = r.TLS.PeerCertificates
	}
	switch proofs := r.Header.Values("DPoP"); len(proofs) {
	case 0:
	case 1:
		req.DPoPProof = proofs[0]
	default:
		return issuer.Mark(fail.Invalidf("dpop", "send one DPoP header, not %d", len(proofs)), issuer.ErrInvalidDPoPProof)
	}
	req.HTTPMethod, req.HTTPURL = r.Method, h.cfg.Issuer.TokenEndpoint()
	return nil
}

// clientAuth collects the client's authentication from the Authorization header and the form,
// without verifying it: exactly one method (RFC 6749 §2.3).
func clientAuth(r *http.Request, form url.Values) (issuer.Request, error) {
	var req issuer.Request
	id, secret, assertion := form.Get("client_id"), form.Get("client_secret"), form.Get("client_assertion")
	methods := 0
	for _, present := range []bool{secret != "", assertion != "" || form.Get("client_assertion_type") != ""} {
		if present {
			methods++
		}
	}
	if r.Header.Get("Authorization") != "" {
		methods++
		bid, bsecret, ok := basicAuth(r)
		if !ok || bsecret == "" {
			return req, fail.Unauthenticatedf("client authentication failed: the Authorization header must hold Basic credentials (RFC 6749 section 2.3.1)")
		}
		if id != "" && id != bid {
			return req, fail.Invalidf("client_id", "client_id in the body differs from the one in the Authorization header")
		}
		id, secret = bid, bsecret
		req.AuthMethod = issuer.MethodClientSecretBasic
	} else if secret != "" {
		req.AuthMethod = issuer.MethodClientSecretPost
	}
	switch {
	case methods == 0 && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && id != "":
		// tls_client_auth or self_signed_tls_client_auth: the certificate the handshake proved is
		// the credential (RFC 8705 section 2); the issuer matches it to client_id's workload.
		req.ClientID = id
		return req, nil
	case methods == 0:
		return req, fail.Unauthenticatedf("client authentication is required: private_key_jwt, client_secret_basic or client_secret_post (or a TLS client certificate with client_id)")
	case methods > 1:
		return req, fail.Invalidf("client_assertion", "use exactly one client authentication method per request")
	}
	if assertion != "" || form.Get("client_assertion_type") != "" {
		if form.Get("client_assertion_type") != issuer.AssertionType {
			return req, fail.Invalidf("client_assertion_type", "client_assertion_type must be %s", issuer.AssertionType)
		}
		req.AssertionType, req.Assertion = issuer.AssertionType, assertion
	}
	req.ClientID, req.ClientSecret = id, secret
	return req, nil
}

// scopes splits the space-delimited scope parameter (RFC 6749 §3.3).
func scopes(form url.Values) ([]string, error) {
	s := strings.Fields(form.Get("scope"))
	if len(s) == 0 {
		return nil, fail.Invalidf("scopes", "scope is required: the space-delimited scopes the token is for")
	}
	return s, nil
}

// audience returns the one audience a request names, by resource (RFC 8707) or audience.
func audience(form url.Values) (string, error) {
	res, aud := form["resource"], form.Get("audience")
	switch {
	case len(res) > 1:
		return "", fail.Invalidf("audience", "a token has one audience: send one resource parameter")
	case len(res) == 1 && aud != "" && res[0] != aud:
		return "", fail.Invalidf("audience", "resource and audience name different audiences; a token has one")
	case len(res) == 1:
		return res[0], nil
	case aud != "":
		return aud, nil
	}
	return "", fail.Invalidf("audience", "name the audience the token is for, as the resource (RFC 8707) or audience parameter")
}
