package services

import (
	"testing"

	"go.uber.org/goleak"
)

// Shutdown must leave nothing running: no relay, follower, watcher or connection.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
