package issuer_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
)

// The embedded etcd members' HTTP connections (replicas_test.go) outlive their tests briefly.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, etcdtest.LeakOptions()...) }
