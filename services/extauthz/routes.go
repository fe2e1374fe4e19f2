package extauthz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/treaty-dev/treaty/token"
)

// Route maps requests to the action and resource the PDP decides on. A route matches a request
// when its Method matches (empty or "*": any method) and either its Path or its Prefix does.
type Route struct {
	// Method is the HTTP method, upper case; empty or "*" matches any.
	Method string `json:"method,omitempty"`
	// Path matches the whole request path (without query); a segment "*" matches any one segment:
	// "/v1/orders/*" matches "/v1/orders/42" but not "/v1/orders" or "/v1/orders/42/items".
	Path string `json:"path,omitempty"`
	// Prefix matches a path equal to it or below it, at a segment boundary: "/v1/orders"
	// matches "/v1/orders" and "/v1/orders/42", not "/v1/orders-admin". "/" matches every path.
	Prefix string `json:"prefix,omitempty"`
	// Action is the scope the request needs.
	Action string `json:"action"`
	// Resource is the audience the request's token must be for.
	Resource string `json:"resource"`
}

// routeFile is the layout of a route table file.
type routeFile struct {
	Routes []Route `json:"routes"`
}

// LoadRoutes reads a route table from a JSON file shaped {"routes": [{"method": "GET",
// "prefix": "/v1/orders", "action": "orders.read", "resource": "orders-api"}, ...]}. Unknown
// members are errors, so that a misspelt one does not silently widen a route.
func LoadRoutes(path string) ([]Route, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("extauthz: read route table: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var f routeFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("extauthz: route table %s: %w", path, err)
	}
	if err := checkRoutes(f.Routes); err != nil {
		return nil, fmt.Errorf("extauthz: route table %s: %w", path, err)
	}
	return f.Routes, nil
}

// checkRoutes validates a route table.
func checkRoutes(routes []Route) error {
	if len(routes) == 0 {
		return errors.New("no routes: every request would be denied with no_route")
	}
	for i, r := range routes {
		if err := checkRoute(r); err != nil {
			return fmt.Errorf("routes[%d]: %w", i, err)
		}
	}
	return nil
}

func checkRoute(r Route) error {
	if r.Method != "" && r.Method != "*" && (r.Method != strings.ToUpper(r.Method) || strings.ContainsAny(r.Method, " /")) {
		return fmt.Errorf("method %q must be an upper-case HTTP method, or \"*\" for any", r.Method)
	}
	switch {
	case (r.Path == "") == (r.Prefix == ""):
		return errors.New("give exactly one of path and prefix")
	case r.Path != "" && !normalized(r.Path):
		return fmt.Errorf("path %q must start with / and hold no empty, . or .. segments", r.Path)
	case r.Prefix != "" && !normalized(r.Prefix):
		return fmt.Errorf("prefix %q must start with / and hold no empty, . or .. segments", r.Prefix)
	case !token.ValidScope(r.Action):
		return fmt.Errorf("action %q must be a scope name", r.Action)
	case r.Resource == "":
		return errors.New("resource is required: the audience requests on this route need")
	}
	return nil
}

// match returns the first route matching method and path.
func match(routes []Route, method, path string) (Route, bool) {
	for _, r := range routes {
		if r.Method != "" && r.Method != "*" && r.Method != method {
			continue
		}
		if r.Prefix != "" && underPrefix(path, r.Prefix) || r.Path != "" && matchPath(r.Path, path) {
			return r, true
		}
	}
	return Route{}, false
}

func underPrefix(path, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

func matchPath(pattern, path string) bool {
	for {
		pseg, prest, pmore := strings.Cut(pattern, "/")
		seg, rest, more := strings.Cut(path, "/")
		if pmore != more || (pseg != "*" && pseg != seg) || (pseg == "*" && seg == "") {
			return false
		}
		if !more {
			return true
		}
		pattern, path = prest, rest
	}
}

// normalized reports whether path is absolute with no empty, "." or ".." segments (a trailing
// slash is allowed), and no encoded slash, backslash or dot: the shape a route can be matched on
// without the upstream resolving it to somewhere else.
func normalized(path string) bool {
	if !strings.HasPrefix(path, "/") || strings.ContainsRune(path, '\\') {
		return false
	}
	lower := strings.ToLower(path)
	for _, enc := range []string{"%2f", "%5c", "%2e"} {
		if strings.Contains(lower, enc) {
			return false
		}
	}
	segs := strings.Split(path[1:], "/")
	for i, s := range segs {
		if s == "." || s == ".." || (s == "" && i != len(segs)-1) {
			return false
		}
	}
	return true
}
