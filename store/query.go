package store

import (
	"fmt"
	"strings"
	"time"
)

// Query selects records for people: the admin API and `smsbridge queue`.
// Zero fields match everything.
type Query struct {
	State  State
	To     string // E.164 destination, exact
	From   string // envelope sender, case-insensitive
	Since  time.Time
	Until  time.Time
	Before string // page cursor: only records with a smaller id (older)
	Limit  int    // default 50, at most 1000
}

// maxScan bounds the records one Query reads, so a filter that matches
// little cannot hold a read transaction over the whole file.
const maxScan = 100_000

// Query returns matching records, newest first, and the cursor of the next
// page ("" when there is none). It walks the records by id (creation
// order) backwards from q.Before and stops at q.Limit matches, or after
// maxScan records, in which case the cursor lets the caller go on.
func (s *Store) Query(q Query) (recs []*Record, next string, err error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	err = s.w.view(func(tx *txn) error {
		c := tx.Bucket(bucketRecords).Cursor()
		k, v := c.Last()
		if q.Before != "" {
			c.Seek([]byte(q.Before))
			k, v = c.Prev()
			if k == nil {
				// Before is past the last key: start from the last one.
				if lk, lv := c.Last(); lk != nil && string(lk) < q.Before {
					k, v = lk, lv
				}
			}
		}
		last := ""
		for scanned := 0; k != nil; k, v = c.Prev() {
			if scanned++; scanned > maxScan || len(recs) == limit {
				next = last // everything older than it is still to see
				return nil
			}
			last = string(k)
			rec, err := decode(v)
			if err != nil {
				return fmt.Errorf("record %s: %w", k, err)
			}
			if !q.Since.IsZero() && rec.Created.Before(q.Since) {
				return nil // older records only from here on
			}
			if q.matches(rec) {
				recs = append(recs, rec)
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("store: query: %w", err)
	}
	return recs, next, nil
}

func (q Query) matches(r *Record) bool {
	switch {
	case q.State != "" && r.State != q.State:
		return false
	case q.To != "" && r.To != q.To:
		return false
	case q.From != "" && !strings.EqualFold(r.From, q.From):
		return false
	case !q.Until.IsZero() && !r.Created.Before(q.Until):
		return false
	}
	return true
}
