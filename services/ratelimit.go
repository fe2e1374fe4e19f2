package services

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// RateLimits configures the per-caller token buckets. A caller is the authenticated identity, or
// the network address of an unauthenticated one (a partner workload asking for a token, which
// authenticates with its assertion inside the call).
type RateLimits struct {
	// Issuance is the sustained token requests per second one caller may make; Burst the
	// bucket's depth. Zero Issuance turns the limit off.
	Issuance      float64
	IssuanceBurst int
	// Admin is the sustained administrative calls per second one identity may make (every RPC
	// other than decisions, health, key publication and Treaty's own service-to-service calls).
	Admin      float64
	AdminBurst int
}

// Default rate limits: far above what a partner or an operator does by hand, low enough that a
// runaway script or a stolen credential cannot monopolise the server.
const (
	DefaultIssuanceRate  = 500
	DefaultIssuanceBurst = 1000
	DefaultAdminRate     = 100
	DefaultAdminBurst    = 200
)

// rateClass says which bucket a method draws from.
type rateClass int

const (
	unlimited rateClass = iota
	issuanceClass
	adminClass
)

// classify puts each method in a class. Decisions are not limited: they are the enforcement
// points' hot path, and a PDP that throttled them would turn load into denies; health and key
// publication are public and cheap.
func classify(method string) rateClass {
	switch method {
	case treatyv1.IssuerService_IssueToken_FullMethodName, treatyv1.IssuerService_ExchangeToken_FullMethodName:
		return issuanceClass
	}
	service, _, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	switch service {
	case treatyv1.DecisionService_ServiceDesc.ServiceName, "envoy.service.auth.v3.Authorization",
		"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection":
		return unlimited
	}
	if method == treatyv1.IssuerService_GetIssuer_FullMethodName || method == treatyv1.IssuerService_ListSigningKeys_FullMethodName {
		return unlimited
	}
	return adminClass
}

// limiter is Treaty's go-grpc-middleware ratelimit.Limiter: one token bucket per caller and
// class.
type limiter struct {
	cfg RateLimits
	// who names the caller of ctx and says whether it is exempt (Treaty's own services).
	who func(ctx context.Context) (name string, exempt bool)

	mu      sync.Mutex
	buckets map[bucketKey]*rate.Limiter
}

type bucketKey struct {
	class  rateClass
	caller string
}

// maxBuckets bounds the limiter's memory: past it, buckets that are full again (their callers
// idle) are dropped, which forgets nothing a caller could exploit.
const maxBuckets = 10_000

func newLimiter(cfg RateLimits, who func(context.Context) (string, bool)) *limiter {
	return &limiter{cfg: cfg, who: who, buckets: map[bucketKey]*rate.Limiter{}}
}

// Limit implements ratelimit.Limiter.
func (l *limiter) Limit(ctx context.Context) error {
	method, _ := grpc.Method(ctx)
	class := classify(method)
	var limit float64
	var burst int
	switch class {
	case issuanceClass:
		limit, burst = l.cfg.Issuance, l.cfg.IssuanceBurst
	case adminClass:
		limit, burst = l.cfg.Admin, l.cfg.AdminBurst
	}
	if limit <= 0 {
		return nil
	}
	name, exempt := l.who(ctx)
	if exempt {
		return nil
	}
	if name == "" {
		name = peerHost(ctx)
	}
	if l.bucket(bucketKey{class, name}, limit, burst).Allow() {
		return nil
	}
	what := "administrative calls"
	if class == issuanceClass {
		what = "token requests"
	}
	return fmt.Errorf("%s made more than %g %s per second (burst %d); slow down and retry, or raise the server's limit", name, limit, what, burst)
}

func (l *limiter) bucket(k bucketKey, limit float64, burst int) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			now := time.Now()
			for key, old := range l.buckets {
				if old.TokensAt(now) >= float64(old.Burst()) {
					delete(l.buckets, key)
				}
			}
		}
		b = rate.NewLimiter(rate.Limit(limit), max(burst, 1))
		l.buckets[k] = b
	}
	return b
}

// peerHost is the caller's network address without its port.
func peerHost(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	host, _, err := net.SplitHostPort(p.Addr.String())
	if err != nil {
		return p.Addr.String()
	}
	return host
}
