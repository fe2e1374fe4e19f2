package ssf

// Paths of the SSF API below the issuer's path. The metadata document is at
// /.well-known/ssf-configuration followed by the issuer's path (SSF 1.0 section 7.2).
const (
	PathWellKnown     = "/.well-known/ssf-configuration"
	PathJWKS          = "/ssf/jwks.json"
	PathConfiguration = "/ssf/stream"
	PathStatus        = "/ssf/status"
	PathVerification  = "/ssf/verify"
	PathPoll          = "/ssf/poll/" // followed by the stream id
)

// Endpoints are the URL paths the HTTP API serves, for the transmitter's issuer.
type Endpoints struct {
	WellKnown, JWKS, Configuration, Status, Verification string
	// PollPrefix is followed by a stream id.
	PollPrefix string
}

// Paths returns the paths the HTTP API serves for this issuer.
func (t *Transmitter) Paths() Endpoints {
	p := t.issuer.Path
	return Endpoints{
		WellKnown:     PathWellKnown + p,
		JWKS:          p + PathJWKS,
		Configuration: p + PathConfiguration,
		Status:        p + PathStatus,
		Verification:  p + PathVerification,
		PollPrefix:    p + PathPoll,
	}
}

// url returns the absolute URL of a path below the issuer.
func (t *Transmitter) url(path string) string {
	return t.cfg.Issuer + path
}

// pollURL is the endpoint_url of a poll stream.
func (t *Transmitter) pollURL(streamID string) string { return t.url(PathPoll + streamID) }

// AuthorizationScheme is an entry of authorization_schemes.
type AuthorizationScheme struct {
	SpecURN string `json:"spec_urn"`
}

// Metadata is the Transmitter Configuration Metadata document (SSF 1.0 section 7.1).
type Metadata struct {
	SpecVersion              string                `json:"spec_version"`
	Issuer                   string                `json:"issuer"`
	JWKSURI                  string                `json:"jwks_uri"`
	DeliveryMethodsSupported []string              `json:"delivery_methods_supported"`
	ConfigurationEndpoint    string                `json:"configuration_endpoint"`
	StatusEndpoint           string                `json:"status_endpoint"`
	VerificationEndpoint     string                `json:"verification_endpoint"`
	AuthorizationSchemes     []AuthorizationScheme `json:"authorization_schemes"`
	DefaultSubjects          string                `json:"default_subjects"`
}

// Metadata returns the transmitter's metadata document. Every subject is implicitly in every
// stream (default_subjects ALL; the interoperability profile's receivers assume so), so there are
// no add and remove subject endpoints.
func (t *Transmitter) Metadata() Metadata {
	return Metadata{
		SpecVersion:              SpecVersion,
		Issuer:                   t.cfg.Issuer,
		JWKSURI:                  t.url(PathJWKS),
		DeliveryMethodsSupported: []string{MethodPush, MethodPoll},
		ConfigurationEndpoint:    t.url(PathConfiguration),
		StatusEndpoint:           t.url(PathStatus),
		VerificationEndpoint:     t.url(PathVerification),
		// Receivers present an OAuth 2.0 bearer token (RFC 6750) in the Authorization header.
		AuthorizationSchemes: []AuthorizationScheme{{SpecURN: "urn:ietf:rfc:6749"}},
		DefaultSubjects:      "ALL",
	}
}
