package registry

import (
	"testing"
	"time"

	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// BenchmarkAppendAudit5000 appends 5,000 chained records in one transaction, as a bulk import of
// 5,000 partners would: the chain must stay a small part of its 10-second budget.
func BenchmarkAppendAudit5000(b *testing.B) {
	st := storetest.OpenBolt(b, Schema)
	at := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	rec := AuditRecord{Time: at, Actor: "import:alice", Action: "partner.create", Target: "partner/acme",
		After: map[string]string{"state": "active", "display_name": "Acme Corporation", "owner_team": "platform-security",
			"contract_end": "2031-06-01T00:00:00Z", "risk_tier": "medium", "legal_name": "Acme Corporation Ltd"}}
	for b.Loop() {
		if err := st.Update(func(tx store.Tx) error {
			for range 5000 {
				if err := appendAudit(tx, rec); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}
