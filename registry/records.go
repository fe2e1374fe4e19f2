package registry

import (
	"encoding/json"
	"fmt"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// kind is one kind of entity as stored: its bucket, and the index that filters its list.
type kind struct {
	name   string // as in messages: "partner"
	bucket string // id -> JSON record
	// index holds "filter id/entity id" keys, so a filtered list is one prefix scan in id order;
	// filterField is the list request's field that names the filter id.
	index, filterField string
}

var (
	partners     = kind{name: "partner", bucket: bucketPartners}
	integrations = kind{name: "integration", bucket: bucketIntegrations, index: bucketIntegrationsByPartner, filterField: "partner_id"}
	workloads    = kind{name: "workload", bucket: bucketWorkloads, index: bucketWorkloadsByIntegration, filterField: "integration_id"}
)

// exists reports whether an entity with this id was ever created.
func (k kind) exists(tx store.Tx, id string) bool { return tx.Get(k.bucket, []byte(id)) != nil }

// load decodes the record of entity id into rec, or returns a NotFound error.
func (k kind) load(tx store.Tx, id string, rec any) error {
	raw := tx.Get(k.bucket, []byte(id))
	if raw == nil {
		return fail.NotFoundf("%s %q does not exist", k.name, id)
	}
	if err := json.Unmarshal(raw, rec); err != nil {
		return fmt.Errorf("registry: decode %s %q: %w", k.name, id, err)
	}
	return nil
}

// put encodes rec as the record of entity id, and indexes it under parent (the id its list is
// filtered by) if the kind has an index.
func (k kind) put(tx store.Tx, id, parent string, rec any) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("registry: encode %s %q: %w", k.name, id, err)
	}
	if err := tx.Put(k.bucket, []byte(id), raw); err != nil {
		return err
	}
	if k.index == "" {
		return nil
	}
	return tx.Put(k.index, []byte(parent+"/"+id), nil)
}

// get is the Get operation of kind k: one record, converted by conv.
func get[R, T any](st store.Store, k kind, id string, conv func(*R) T) (T, error) {
	var rec R
	var zero T
	if err := fail.CheckID("id", id); err != nil {
		return zero, err
	}
	if err := st.View(func(tx store.Tx) error { return k.load(tx, id, &rec) }); err != nil {
		return zero, err
	}
	return conv(&rec), nil
}

// list is the List operation of kind k: one page in id order, only the entities under filter if
// it is set, and the next page's token.
func list[R, T any](st store.Store, k kind, filter string, pageSize int, pageToken string, conv func(*R) T) ([]T, string, error) {
	bucket, prefix := k.bucket, ""
	if filter != "" {
		if err := fail.CheckID(k.filterField, filter); err != nil {
			return nil, "", err
		}
		bucket, prefix = k.index, filter+"/"
	}
	q, err := newQuery(k.name, filter, pageSize, pageToken)
	if err != nil {
		return nil, "", err
	}
	var out []T
	err = st.View(func(tx store.Tx) error {
		return q.scan(tx, bucket, prefix, func(id string) error {
			var rec R
			if err := k.load(tx, id, &rec); err != nil {
				// The scan or the index named it, so even its absence means a broken store: an
				// internal error, not the NotFound kind of err.
				return fmt.Errorf("registry: %s %q is listed but unreadable: %v", k.name, id, err)
			}
			out = append(out, conv(&rec))
			return nil
		})
	})
	if err != nil {
		return nil, "", err
	}
	return out, q.next, nil
}
