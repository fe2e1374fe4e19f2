package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
)

// The etcd members some tests start leave connections that close after the test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, etcdtest.LeakOptions()...) }
