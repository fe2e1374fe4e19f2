package decisionlog

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// Page sizes of List.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// pageTokenVersion starts every page token, so the format can change without old tokens being
// misread.
const pageTokenVersion = "v1"

// Query selects entries, oldest first. The service edge validates it; List is defensive anyway.
type Query struct {
	// Subject keeps only entries about this workload, if set.
	Subject string
	// Start keeps only entries at or after it, if set.
	Start time.Time
	// End keeps only entries before it, if set.
	End time.Time
	// PageSize bounds the entries returned: zero or less means DefaultPageSize, more than
	// MaxPageSize means MaxPageSize.
	PageSize int
	// PageToken resumes after the page that returned it, for the same Subject, Start and End.
	PageToken string
}

// Page is one page of a List.
type Page struct {
	// Entries are in time order (then log order).
	Entries []Entry
	// NextPageToken resumes after this page; empty on the last one.
	NextPageToken string
}

// List returns one page of the entries q selects, read through the subject index when q names a
// subject and through the time index otherwise: either way a range scan from Start. Without a
// subject the cost is that of the page; with one, it is that of the page plus the keys of the
// other subjects in its partition of the index (1/subjectPartitions of the log) up to the page's
// last entry, which are compared by hash without reading their records. An unusable page token
// is an Invalid error on page_token.
func (l *Log) List(q Query) (Page, error) {
	size := q.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	size = min(size, MaxPageSize)
	filter := q.filter()
	from := position{time: timeKey(q.Start)}
	if q.PageToken != "" {
		after, err := parsePageToken(q.PageToken, filter)
		if err != nil {
			return Page{}, err
		}
		if after.time > from.time || (after.time == from.time && after.seq >= from.seq) {
			from = position{time: after.time, seq: after.seq + 1}
		}
	}
	// Without a subject the time index holds exactly the entries to list. With one, the subject
	// index's partition holds them among other subjects' entries: keys whose hash differs are
	// skipped unread, and a record read on a matching hash is kept only if its subject is q's.
	bucket, prefix := byTimeBucket, []byte(nil)
	var hash []byte
	if q.Subject != "" {
		h := subjectHash(q.Subject)
		bucket, prefix, hash = bySubjectBucket, []byte{partitionOf(h)}, binary.BigEndian.AppendUint64(nil, h)
	}
	end := uint64(0)
	if !q.End.IsZero() {
		end = timeKey(q.End)
	}
	var page Page
	err := l.store.View(func(tx store.Tx) error {
		var last position
		return tx.Scan(bucket, prefix, from.appendTo(append([]byte(nil), prefix...)), func(k, v []byte) (bool, error) {
			p := positionFrom(k)
			if !q.End.IsZero() && p.time >= end {
				return false, nil
			}
			if hash != nil && !bytes.Equal(v, hash) {
				return true, nil
			}
			if len(page.Entries) == size {
				page.NextPageToken = pageToken(filter, last)
				return false, nil
			}
			raw := tx.Get(recordsBucket, store.Uint64Key(p.seq))
			if raw == nil {
				return true, nil // an index key without its entry: retention is part-way; skip it
			}
			e, err := decode(raw)
			if err != nil {
				return false, err
			}
			if hash != nil && e.Subject != q.Subject {
				return true, nil // another subject with the same hash
			}
			page.Entries = append(page.Entries, e)
			last = p
			return true, nil
		})
	})
	if err != nil {
		return Page{}, fmt.Errorf("decisionlog: list: %w", err)
	}
	return page, nil
}

// filter spells the query's selection, to bind a page token to it.
func (q Query) filter() string {
	return strings.Join([]string{q.Subject, strconv.FormatUint(timeKey(q.Start), 10), strconv.FormatUint(timeKey(q.End), 10)}, "\x00")
}

func pageToken(filter string, last position) string {
	raw := strings.Join([]string{pageTokenVersion, filter, strconv.FormatUint(last.time, 10), strconv.FormatUint(last.seq, 10)}, "\x00")
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func parsePageToken(token, filter string) (position, error) {
	bad := fail.Invalidf("page_token", "page_token is not a token this list returned; start again without it")
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return position{}, bad
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 6 || parts[0] != pageTokenVersion {
		return position{}, bad
	}
	t, err1 := strconv.ParseUint(parts[4], 10, 64)
	seq, err2 := strconv.ParseUint(parts[5], 10, 64)
	if err1 != nil || err2 != nil {
		return position{}, bad
	}
	if strings.Join(parts[1:4], "\x00") != filter {
		return position{}, fail.Invalidf("page_token", "page_token belongs to another query; pass the same subject, start_time and end_time as the call that returned it")
	}
	return position{time: t, seq: seq}, nil
}
