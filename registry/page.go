package registry

import (
	"encoding/base64"
	"strings"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
	// tokenVersion starts every page token, so the format can change without old tokens being
	// misread.
	tokenVersion = "v1"
)

// query is one page request of a list: which list and filter, where to resume, how many to return.
type query struct {
	list, filter string
	after        string // the last id of the previous page, or ""
	size         int
	next         string // set by scan: the token for the next page, or "" on the last page
}

// newQuery checks a page size and token. The token is bound to the list and filter it was issued
// for, so it cannot silently skip entries of another list.
func newQuery(list, filter string, pageSize int, pageToken string) (*query, error) {
	q := &query{list: list, filter: filter, size: pageSize}
	switch {
	case pageSize < 0:
		return nil, fail.Invalidf("page_size", "page_size must not be negative")
	case pageSize == 0:
		q.size = defaultPageSize
	case pageSize > maxPageSize:
		q.size = maxPageSize
	}
	if pageToken == "" {
		return q, nil
	}
	bad := fail.Invalidf("page_token", "page_token is not a token this list returned; start again without it")
	raw, err := base64.RawURLEncoding.DecodeString(pageToken)
	if err != nil {
		return nil, bad
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 4 || parts[0] != tokenVersion || !fail.ValidID(parts[3]) {
		return nil, bad
	}
	if parts[1] != list || parts[2] != filter {
		return nil, fail.Invalidf("page_token", "page_token belongs to another list or filter; pass the same filter as the call that returned it")
	}
	q.after = parts[3]
	return q, nil
}

func (q *query) token(last string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join([]string{tokenVersion, q.list, q.filter, last}, "\x00")))
}

// scan calls fn with the ids of one page, in key order, from bucket keys that start with prefix
// (the prefix is stripped), and sets q.next when more remain.
func (q *query) scan(tx store.Tx, bucket, prefix string, fn func(id string) error) error {
	var start []byte
	if q.after != "" {
		// The smallest key after the previous page's last one.
		start = []byte(prefix + q.after + "\x00")
	}
	n := 0
	var last string
	return tx.Scan(bucket, []byte(prefix), start, func(k, _ []byte) (bool, error) {
		if n == q.size {
			q.next = q.token(last)
			return false, nil
		}
		last = string(k[len(prefix):])
		n++
		return true, fn(last)
	})
}

// scanWhere is scan with a filter: visit(id, take) reports whether entity id matches, and keeps
// it when take is set. A page holds up to q.size matches; q.next is set only when another match
// follows, so a filtered list never ends with an empty page behind a token.
func (q *query) scanWhere(tx store.Tx, bucket, prefix string, visit func(id string, take bool) (bool, error)) error {
	var start []byte
	if q.after != "" {
		start = []byte(prefix + q.after + "\x00")
	}
	n := 0
	var last string
	return tx.Scan(bucket, []byte(prefix), start, func(k, _ []byte) (bool, error) {
		id := string(k[len(prefix):])
		take := n < q.size
		ok, err := visit(id, take)
		switch {
		case err != nil:
			return false, err
		case !ok:
			return true, nil
		case !take:
			q.next = q.token(last)
			return false, nil
		}
		last = id
		n++
		return true, nil
	})
}
