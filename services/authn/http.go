package authn

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/treaty-dev/treaty/access"
	"github.com/treaty-dev/treaty/certs"
	"github.com/treaty-dev/treaty/fail"
)

// HTTP wraps next so that only callers holding one of roles (admin always does; no roles means
// any authenticated caller) reach it. A caller authenticates with an "Authorization: Bearer
// <token>" header or a client certificate the server verified. Refusals are 401 (with
// WWW-Authenticate) or 403, with a JSON body {"error": ..., "error_description": ...}, and are
// recorded like gRPC ones with the method "HTTP <method> <path>". CallerFrom works on the
// request's context.
func (a *Authn) HTTP(next http.Handler, roles ...access.Role) http.Handler {
	allowed := allow(roles...)
	if len(roles) > 0 {
		names := []string{string(access.RoleAdmin)}
		for _, r := range roles {
			names = append(names, string(r))
		}
		allowed.allowedBy = "one of the roles " + joinOr(names)
	} else {
		allowed = anyCaller
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, via, err := a.authenticateHTTP(r)
		method := "HTTP " + r.Method + " " + r.URL.Path // never the query: it may carry secrets
		if err != nil {
			msg := msgNoCredential
			if fail.KindOf(err) == fail.Unauthenticated {
				msg = err.Error()
			}
			a.refuseHTTP(w, r, "", via, method, http.StatusUnauthorized, msg)
			return
		}
		if !allowed.anyCaller && !c.Has(allowed.roles...) {
			a.refuseHTTP(w, r, c.Name, c.Via, method, http.StatusForbidden,
				method+" needs "+allowed.allowedBy+"; "+c.Name+" holds "+roleList(c.Roles))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
}

func joinOr(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	out := ""
	for i, n := range names[:len(names)-1] {
		if i > 0 {
			out += ", "
		}
		out += n
	}
	return out + " or " + names[len(names)-1]
}

func (a *Authn) authenticateHTTP(r *http.Request) (*access.Caller, string, error) {
	if vals := r.Header.Values("Authorization"); len(vals) > 0 {
		tok, ok := bearer(vals[0])
		if !ok || len(vals) > 1 {
			return nil, access.ViaToken, fail.Unauthenticatedf("the Authorization header must be 'Bearer <token>'")
		}
		c, err := a.access.AuthenticateToken(tok)
		return c, access.ViaToken, err
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		name := certs.Name(r.TLS.VerifiedChains[0][0])
		c, err := a.access.AuthenticateName(name)
		if err != nil {
			return c, access.ViaCertificate, fail.Unauthenticatedf("the client certificate's name %q is not a known identity", fail.Clip(name))
		}
		return c, access.ViaCertificate, nil
	}
	return nil, "", fail.Unauthenticatedf("no credential: send a Treaty token (Authorization: Bearer trt_...) or a client certificate")
}

func (a *Authn) refuseHTTP(w http.ResponseWriter, r *http.Request, caller, via, method string, code int, msg string) {
	name := "PERMISSION_DENIED"
	errCode := "permission_denied"
	if code == http.StatusUnauthorized {
		name, errCode = "UNAUTHENTICATED", "unauthenticated"
		w.Header().Set("WWW-Authenticate", `Bearer realm="treaty"`)
	}
	a.access.RecordRefusal(access.Refusal{Caller: caller, Via: via, Method: method, Code: name, Reason: msg, Peer: r.RemoteAddr})
	a.log.Debug("request refused", "method", method, "code", name, "caller", caller, "via", via, "peer", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": errCode, "error_description": msg})
}
