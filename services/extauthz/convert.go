package extauthz

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/netip"
	"net/url"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/treaty-dev/treaty/pdp"
)

// credential is what a request presents: its token, the scheme it came with, and the DPoP proof.
type credential struct {
	token  string
	scheme string // "Bearer" or "DPoP", for WWW-Authenticate
	proof  pdp.Proof
}

// credentialOf reads the authorization header: "Bearer TOKEN" or "DPoP TOKEN", the scheme in
// any case. With DPoP, the dpop header is the proof, for this request's method and URI.
func credentialOf(h *authv3.AttributeContext_HttpRequest) credential {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header(h, "authorization")), " ")
	tok = strings.TrimLeft(tok, " ")
	if !ok || tok == "" || strings.ContainsAny(tok, " \t") {
		return credential{scheme: "Bearer"}
	}
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return credential{token: tok, scheme: "Bearer"}
	case strings.EqualFold(scheme, "DPoP"):
		return credential{token: tok, scheme: "DPoP", proof: pdp.Proof{
			DPoP: header(h, "dpop"), Method: h.GetMethod(), URI: requestURI(h),
		}}
	}
	return credential{scheme: "Bearer"}
}

// header returns a request header by its lower-case name, from the headers map or, when Envoy
// sends raw headers (encode_raw_headers), from the header map.
func header(h *authv3.AttributeContext_HttpRequest, name string) string {
	if v, ok := h.GetHeaders()[name]; ok {
		return v
	}
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		if strings.EqualFold(hv.GetKey(), name) {
			if raw := hv.GetRawValue(); raw != nil {
				return string(raw)
			}
			return hv.GetValue()
		}
	}
	return ""
}

// requestPath is the request target's path, without query or fragment.
func requestPath(target string) string {
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		return target[:i]
	}
	return target
}

// requestURI is the URI a DPoP proof's htu must name: scheme, host and path, without query or
// fragment (RFC 9449, section 4.3).
func requestURI(h *authv3.AttributeContext_HttpRequest) string {
	scheme := h.GetScheme()
	if scheme == "" {
		scheme = "https"
	}
	return scheme + "://" + h.GetHost() + requestPath(h.GetPath())
}

// requestID is the request's id as Envoy knows it, for the decision log.
func requestID(h *authv3.AttributeContext_HttpRequest) string {
	if id := header(h, "x-request-id"); id != "" {
		return id
	}
	return h.GetId()
}

// sourceIP is the downstream peer's address; the zero Addr when it is not an IP socket.
func sourceIP(a *authv3.AttributeContext) netip.Addr {
	ip, err := netip.ParseAddr(a.GetSource().GetAddress().GetSocketAddress().GetAddress())
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap()
}

// certThumbprint is the base64url SHA-256 thumbprint of the client certificate (RFC 8705's
// x5t#S256), from the source certificate, else (if trusted) from x-forwarded-client-cert; empty
// when there is none.
func certThumbprint(a *authv3.AttributeContext, trustXFCC bool) string {
	if c := a.GetSource().GetCertificate(); c != "" {
		return pemThumbprint(c)
	}
	if !trustXFCC {
		return ""
	}
	xfcc := header(a.GetRequest().GetHttp(), "x-forwarded-client-cert")
	if xfcc == "" {
		return ""
	}
	// The last element is the one the nearest proxy added for its own client.
	elems := splitQuoted(xfcc, ',')
	for _, pair := range splitQuoted(elems[len(elems)-1], ';') {
		k, v, _ := strings.Cut(strings.TrimSpace(pair), "=")
		v = strings.Trim(v, `"`)
		switch strings.ToLower(k) {
		case "hash":
			if sum, err := hex.DecodeString(v); err == nil && len(sum) == sha256.Size {
				return base64.RawURLEncoding.EncodeToString(sum)
			}
		case "cert":
			return pemThumbprint(v)
		}
	}
	return ""
}

// pemThumbprint hashes the DER of a URL-encoded PEM certificate (as Envoy sends it).
func pemThumbprint(urlPEM string) string {
	s, err := url.QueryUnescape(urlPEM)
	if err != nil {
		return ""
	}
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" {
		return ""
	}
	sum := sha256.Sum256(block.Bytes)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// splitQuoted splits s at sep outside double quotes.
func splitQuoted(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unauthenticated are the reasons that say the credential itself is missing or not valid: the
// client must get a new one (401, RFC 6750's invalid_token), rather than more rights (403).
var unauthenticated = map[string]bool{
	ReasonTokenMissing:        true,
	pdp.ReasonMalformedToken:  true,
	pdp.ReasonUnknownKey:      true,
	pdp.ReasonKeyRevoked:      true,
	pdp.ReasonBadSignature:    true,
	pdp.ReasonWrongIssuer:     true,
	pdp.ReasonExpired:         true,
	pdp.ReasonNotYetValid:     true,
	pdp.ReasonEpochMismatch:   true,
	pdp.ReasonRevoked:         true,
	pdp.ReasonSequenceAhead:   true,
	pdp.ReasonSubjectMismatch: true,
}

// denied is the answer to a denied request.
func denied(reason, decisionID, scheme string) *authv3.CheckResponse {
	code := typev3.StatusCode_Forbidden
	headers := []*corev3.HeaderValueOption{setHeader(HeaderReason, reason), setHeader("content-type", "application/json")}
	switch {
	case reason == ReasonPathNotNormalized:
		code = typev3.StatusCode_BadRequest
	case reason == ReasonTokenMissing:
		code = typev3.StatusCode_Unauthorized
		headers = append(headers, setHeader("www-authenticate", scheme+` realm="treaty"`))
	case unauthenticated[reason]:
		code = typev3.StatusCode_Unauthorized
		headers = append(headers, setHeader("www-authenticate", scheme+` realm="treaty", error="invalid_token"`))
	}
	if decisionID != "" {
		headers = append(headers, setHeader(HeaderDecisionID, decisionID))
	}
	body, _ := json.Marshal(struct {
		Decision   bool   `json:"decision"`
		Reason     string `json:"reason"`
		DecisionID string `json:"decision_id,omitempty"`
	}{false, reason, decisionID})
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied), Message: "denied: " + reason},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: code}, Headers: headers, Body: string(body),
		}},
	}
}

// allowed is the answer to an allowed request: the upstream learns the decision and who it
// was for, in headers that replace any the client sent.
func allowed(d pdp.Decision) *authv3.CheckResponse {
	ok := &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{
		setHeader(HeaderReason, strings.Join(d.Reasons, ",")),
		setHeader(HeaderDecisionID, d.DecisionID.String()),
	}}
	for key, value := range map[string]string{HeaderWorkload: d.Subject, HeaderPartner: d.Partner} {
		if value == "" {
			// Whatever the client sent under Treaty's name must not reach the upstream.
			ok.HeadersToRemove = append(ok.HeadersToRemove, key)
		} else {
			ok.Headers = append(ok.Headers, setHeader(key, value))
		}
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}
}

func setHeader(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}
