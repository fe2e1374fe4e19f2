package opa

import (
	"context"
	_ "embed"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/treaty-dev/treaty/token"
)

//go:embed authz.rego
var authzRego string

// opaEngine is authz.rego prepared once over the fixture's data, in OPA's in-memory store with
// AST values on read (OPA's fastest configuration for data that is only read).
type opaEngine struct {
	query rego.PreparedEvalQuery
}

func newOPA(tb testing.TB, data map[string]any) *opaEngine {
	tb.Helper()
	store := inmem.NewFromObjectWithOpts(data, inmem.OptReturnASTValuesOnRead(true))
	q, err := rego.New(
		rego.Query("data.treaty.authz.allow"),
		rego.Module("authz.rego", authzRego),
		rego.Store(store),
	).PrepareForEval(context.Background())
	if err != nil {
		tb.Fatalf("prepare the Rego query: %v", err)
	}
	return &opaEngine{query: q}
}

// input is the Rego policy's input: a verified token's claims and the request.
func input(c token.Claims, action, resource, sourceIP, environment string, now int64) map[string]any {
	return map[string]any{
		"claims": map[string]any{
			"sub":         c.Subject,
			"partner":     c.Partner,
			"integration": c.Integration,
			"scope":       c.Scope,
			"aud":         c.Audience,
			"exp":         c.Expiry,
			"jti":         c.ID,
			"tsq":         int64(c.Sequence),
		},
		"action":      action,
		"resource":    resource,
		"source_ip":   sourceIP,
		"environment": environment,
		"now":         now,
	}
}

// allow evaluates the prepared query on in.
func (e *opaEngine) allow(ctx context.Context, in map[string]any) (bool, error) {
	rs, err := e.query.Eval(ctx, rego.EvalInput(in))
	if err != nil {
		return false, err
	}
	return rs.Allowed(), nil
}
