//go:build race

package e2e

// With -race, the binary under test is built with the race detector too, so the end-to-end runs
// check the servers for data races as well.
func init() { buildFlags = append(buildFlags, "-race") }
