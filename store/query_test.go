package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func TestQueryPagesNewestFirst(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "q.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var recs []*Record
	for i := range 7 {
		recs = append(recs, &Record{From: fmt.Sprintf("s%d@x.test", i%2), To: fmt.Sprintf("+1415555010%d", i%3),
			Segments: []Segment{{Payload: []byte("x")}}})
	}
	if err := st.Add(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		q    Query
		want []int // indexes into recs, in result order
	}{
		{"all, newest first", Query{}, []int{6, 5, 4, 3, 2, 1, 0}},
		{"by destination", Query{To: "+14155550100"}, []int{6, 3, 0}},
		{"by sender, any case", Query{From: "S1@X.TEST"}, []int{5, 3, 1}},
		{"by state", Query{State: Queued, To: "+14155550101"}, []int{4, 1}},
		{"other state", Query{State: Delivered}, nil},
		{"until excludes later", Query{Until: time.Unix(0, 0)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, next, err := st.Query(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if next != "" {
				t.Errorf("next %q, want none", next)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d records, want %d", len(got), len(tc.want))
			}
			for i, w := range tc.want {
				if got[i].ID != recs[w].ID {
					t.Errorf("result %d is %s, want record %d (%s)", i, got[i].ID, w, recs[w].ID)
				}
			}
		})
	}
	// Pages of 3: 6,5,4 then 3,2,1 then 0.
	var seen []string
	q := Query{Limit: 3}
	for page := 0; page < 5; page++ {
		got, next, err := st.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range got {
			seen = append(seen, r.ID)
		}
		if next == "" {
			break
		}
		q.Before = next
	}
	if len(seen) != 7 || seen[0] != recs[6].ID || seen[6] != recs[0].ID {
		t.Errorf("paging saw %v", seen)
	}
}
