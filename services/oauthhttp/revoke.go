package oauthhttp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
)

// revokeReason is the reason recorded in the feed for a revocation through /oauth2/revoke.
const revokeReason = "revoked by its client through the OAuth revocation endpoint (RFC 7009)"

// revoke serves POST /oauth2/revoke (RFC 7009). The client must authenticate; it may revoke only
// its own tokens. The owner of a token is what the issuer's inventory says, not what the token
// claims, so a token forged with another's jti revokes nothing. A token that is malformed, unknown,
// expired or another client's is answered 200 like a revoked one (RFC 7009 §2.2), and only logged.
func (h *Handler) revoke(w http.ResponseWriter, r *http.Request) {
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
	raw := form.Get("token")
	if raw == "" {
		writeError(w, http.StatusBadRequest, errInvalidRequest, "token is required")
		return
	}
	id, _, err := h.iss.AuthenticateClient(r.Context(), client)
	if err != nil {
		h.fail(w, err)
		return
	}
	jti := tokenID(raw)
	if jti == "" {
		h.log.Info("oauth: revocation of a token that is not a Treaty access token ignored", "client", id)
		w.WriteHeader(http.StatusOK)
		return
	}
	cred, err := h.iss.Credential(jti)
	switch {
	case fail.KindOf(err) == fail.NotFound:
		h.log.Info("oauth: revocation of a token not in the inventory ignored", "client", id, "jti", jti)
		w.WriteHeader(http.StatusOK)
		return
	case err != nil:
		h.fail(w, err)
		return
	case cred.WorkloadID != id:
		h.log.Warn("oauth: a client asked to revoke another workload's token; ignored", "client", id, "jti", jti, "owner", cred.WorkloadID)
		w.WriteHeader(http.StatusOK)
		return
	case !cred.ExpireTime.After(h.cfg.Now()):
		w.WriteHeader(http.StatusOK) // expired: nothing left to revoke
		return
	}
	if err := h.cfg.Revoker.RevokeCredential(r.Context(), jti, revokeReason, "workload:"+id); err != nil {
		h.log.Warn("oauth: revocation failed", "client", id, "jti", jti, "err", err)
		if fail.KindOf(err) == fail.Unavailable || fail.KindOf(err) == fail.Internal {
			err = fail.Unavailablef(err, "the revocation could not be recorded; retry")
		}
		h.fail(w, err)
		return
	}
	h.log.Info("oauth: credential revoked by its client", "client", id, "jti", jti)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// tokenID returns the jti of a JWT without verifying it (the inventory decides what it is), or ""
// if raw is not one.
func tokenID(raw string) string {
	if len(raw) > issuer.MaxAssertionSize {
		return ""
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.RS256})
	if err != nil {
		return ""
	}
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil || fail.CheckOpaqueID("jti", c.ID) != nil {
		return ""
	}
	return c.ID
}

// introspection is the RFC 7662 response.
type introspection struct {
	Active      bool   `json:"active"`
	Scope       string `json:"scope,omitempty"`
	ClientID    string `json:"client_id,omitempty"`
	TokenType   string `json:"token_type,omitempty"`
	Exp         int64  `json:"exp,omitempty"`
	Iat         int64  `json:"iat,omitempty"`
	Sub         string `json:"sub,omitempty"`
	Aud         string `json:"aud,omitempty"`
	Iss         string `json:"iss,omitempty"`
	Jti         string `json:"jti,omitempty"`
	Partner     string `json:"partner,omitempty"`
	Integration string `json:"integration,omitempty"`
	Cnf         any    `json:"cnf,omitempty"`
}

// introspect serves POST /oauth2/introspect (RFC 7662). Who may ask: a configured resource server
// (HTTP Basic with its id and secret) about any token, and an authenticated workload about its
// own tokens only; anything else about a token is {"active": false}, so a workload learns nothing
// of other workloads' tokens. The answer is the PDP's view: a revoked, blocked, expired token, or
// one signed by a revoked key, is inactive.
func (h *Handler) introspect(w http.ResponseWriter, r *http.Request) {
	form, err := h.readForm(w, r)
	if err != nil {
		h.fail(w, err)
		return
	}
	workload, ok := h.introspectionCaller(w, r, form)
	if !ok {
		return
	}
	raw := form.Get("token")
	if raw == "" {
		writeError(w, http.StatusBadRequest, errInvalidRequest, "token is required")
		return
	}
	in, err := h.cfg.Introspector.Introspect(r.Context(), raw)
	if err != nil {
		h.fail(w, err)
		return
	}
	c := in.Claims
	if !in.Active || c == nil || (workload != "" && c.Presenter() != workload) { // the holder: an exchanged token's subject is someone else
		writeJSON(w, http.StatusOK, introspection{Active: false})
		return
	}
	resp := introspection{
		Active: true, Scope: c.Scope, ClientID: c.ClientID, TokenType: "Bearer", Exp: c.Expiry, Iat: c.IssuedAt,
		Sub: c.Subject, Aud: c.Audience, Iss: c.Issuer, Jti: c.ID, Partner: c.Partner, Integration: c.Integration,
	}
	if c.Confirmation != nil {
		resp.Cnf = c.Confirmation
		if c.Confirmation.JKT != "" {
			resp.TokenType = "DPoP"
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// introspectionCaller authenticates the caller of the introspection endpoint and returns "" for a
// resource server or the workload id of a workload, or writes the error and returns false.
func (h *Handler) introspectionCaller(w http.ResponseWriter, r *http.Request, form url.Values) (string, bool) {
	if user, pass, ok := basicAuth(r); ok {
		if want, known := h.resources[user]; known {
			got := sha256.Sum256([]byte(pass))
			if subtle.ConstantTimeCompare(got[:], want[:]) == 1 && form.Get("client_secret") == "" && form.Get("client_assertion") == "" {
				return "", true
			}
			h.log.Info("oauth: resource server authentication failed", "resource_server", user)
			writeError(w, http.StatusUnauthorized, errInvalidClient, "client authentication failed")
			return "", false
		}
	}
	client, err := h.client(r, form)
	if err != nil {
		h.fail(w, err)
		return "", false
	}
	id, _, err := h.iss.AuthenticateClient(r.Context(), client)
	if err != nil {
		h.fail(w, err)
		return "", false
	}
	return id, true
}

// basicAuth returns the form-urlencoded-decoded Basic credentials of r (RFC 6749 §2.3.1).
func basicAuth(r *http.Request) (string, string, bool) {
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", "", false
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	u, err1 := url.QueryUnescape(user)
	p, err2 := url.QueryUnescape(pass)
	return u, p, ok && err1 == nil && err2 == nil
}

// revocationClient is Revoker over the RevocationService.
type revocationClient struct {
	c treatyv1.RevocationServiceClient
}

// RevocationClient returns a Revoker that revokes through the RevocationService client c (a
// connection to this process's revoker, or a remote one). Its errors are fail errors: a peer's
// status becomes Unavailable, which the endpoint answers 503.
func RevocationClient(c treatyv1.RevocationServiceClient) Revoker { return revocationClient{c} }

// RevokeCredential implements Revoker.
func (rc revocationClient) RevokeCredential(ctx context.Context, jti, reason, actor string) error {
	_, err := rc.c.Revoke(ctx, &treatyv1.RevokeRequest{
		TargetKind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, TargetId: jti, Reason: reason, Actor: actor,
	})
	if err != nil {
		return fail.Unavailablef(err, "the revoker did not record the revocation; retry")
	}
	return nil
}
