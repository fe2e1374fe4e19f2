package issuer

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// BenchmarkReportUsage measures one full usage report (MaxUsageReport credentials of 100
// workloads, each seen later than before), the batch a busy PDP sends every interval: the
// credentials' last-seen times and the workloads' last-used marks in one transaction.
func BenchmarkReportUsage(b *testing.B) {
	st := storetest.OpenBolt(b, Schema)
	now := time.Now()
	usages := make([]Usage, MaxUsageReport)
	err := st.Update(func(tx store.Tx) error {
		for n := range usages {
			c := Credential{ID: fmt.Sprintf("jti-%06d", n), WorkloadID: fmt.Sprintf("w-%03d", n%100), IntegrationID: "integ",
				PartnerID: "p", Scopes: []string{"orders.read"}, IssueTime: now, ExpireTime: now.Add(time.Hour)}
			usages[n].CredentialID = c.ID
			if err := putCredential(tx, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	clock := now.Add(-time.Hour)
	i := &Issuer{cfg: Config{Store: st, Now: time.Now}}
	b.ResetTimer()
	for b.Loop() {
		clock = clock.Add(time.Millisecond)
		for n := range usages {
			usages[n].LastSeen = clock
		}
		if n, err := i.ReportUsage(usages); err != nil || n != len(usages) {
			b.Fatalf("ReportUsage = %d, %v", n, err)
		}
	}
}

// recordWorkload reads the workload of a stored record wherever its member is, and refuses
// what is not a record.
func TestRecordWorkload(t *testing.T) {
	stored, err := json.Marshal(newCredentialRecord(Credential{ID: "jti-1", WorkloadID: "acme-bot", Scopes: []string{"a"}}, 7))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, raw, want string
		bad             bool
	}{
		{"as stored", string(stored), "acme-bot", false},
		{"workload later", `{"jti":"x","scopes":["a","b"],"aud":{"k":[1]},"workload":"w-2"}`, "w-2", false},
		{"no workload", `{"jti":"x"}`, "", false},
		{"not an object", `["workload"]`, "", true},
		{"truncated", `{"jti":"x","workl`, "", true},
		{"workload not a string", `{"workload":3}`, "", true},
	} {
		got, err := recordWorkload([]byte(tt.raw))
		if got != tt.want || (err != nil) != tt.bad {
			t.Errorf("%s: recordWorkload = %q, %v; want %q (error %v)", tt.name, got, err, tt.want, tt.bad)
		}
	}
}
