// Package opa compares Treaty's in-process decision with the same decision written in Rego and
// evaluated by Open Policy Agent, side by side in one benchmark run (see README.md). It is a
// separate module so that Treaty's own module never depends on OPA; it holds only tests and
// benchmarks.
package opa
