package store

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestOverlayOrder: keys of three buckets set, unset and set again, with
// a bucket's order asked for at random moments between, come out of ascend
// and of the cursor iterator in order, each once, and only while set. A
// cursor over one bucket orders no other bucket's keys.
func TestOverlayOrder(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			o := newOverlay(0)
			model := map[string]bool{}
			for step := range 3000 {
				id := byte(1 + rng.IntN(3))
				k := string([]byte{id, byte('a' + rng.IntN(26)), byte('a' + rng.IntN(26))})
				switch r := rng.IntN(16); {
				case r < 8:
					o.set(k, item{v: []byte(k)})
					model[k] = true
				case r < 15:
					if model[k] {
						o.unset(k)
						delete(model, k)
					}
				default:
					var waiting int
					if len(o.pending) > 3 {
						waiting = len(o.pending[3])
					}
					checkOverlayOrder(t, step, o, id, model)
					if id != 3 && len(o.pending) > 3 && len(o.pending[3]) != waiting {
						t.Fatalf("step %d: a cursor over bucket %d ordered bucket 3's keys", step, id)
					}
				}
			}
			for id := byte(1); id <= 3; id++ {
				checkOverlayOrder(t, -1, o, id, model)
			}
			o.sealed = true // as frozen: one sort, no B-tree
			for id := byte(1); id <= 3; id++ {
				checkOverlayOrder(t, -2, o, id, model)
			}
			checkIterFrom(t, o, model)
		})
	}
}

// checkOverlayOrder checks the keys of bucket id that the iterator gives,
// forwards and backwards, against model (which holds every bucket's).
func checkOverlayOrder(t *testing.T, step int, o *overlay, id byte, model map[string]bool) {
	t.Helper()
	var want []string
	for _, k := range slices.Sorted(maps.Keys(model)) {
		if k[0] == id {
			want = append(want, k)
		}
	}
	got := iterKeys(o, id, nil, true, true)
	for _, k := range got {
		if v := o.m[k].v; string(v) != k {
			t.Fatalf("step %d: %q holds %q", step, k, v)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("step %d: bucket %d forwards, the iterator gave %q, want %q", step, id, got, want)
	}
	got = iterKeys(o, id, nil, true, false)
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Fatalf("step %d: bucket %d backwards, the iterator gave %q, want %q", step, id, got, want)
	}
}

// iterKeys returns the keys of bucket id that an iterator placed at from
// (see ovIter.place) gives.
func iterKeys(o *overlay, id byte, from []byte, incl, fwd bool) []string {
	it := &ovIter{o: o, id: id}
	it.place(from, incl, fwd)
	var keys []string
	for {
		k, ok := it.peek()
		if !ok {
			return keys
		}
		keys = append(keys, k)
		it.pos++
	}
}

// checkIterFrom places a sealed overlay's iterator over bucket 1 at every
// key and between keys, both ways, with and without the key itself.
func checkIterFrom(t *testing.T, o *overlay, model map[string]bool) {
	t.Helper()
	var want []string
	for _, k := range slices.Sorted(maps.Keys(model)) {
		if k[0] == 1 {
			want = append(want, k)
		}
	}
	for _, from := range []string{"a", "az", "mm", "mma", "zz", "zzz"} {
		for _, incl := range []bool{true, false} {
			for _, fwd := range []bool{true, false} {
				var exp []string
				for _, k := range want {
					c := strings.Compare(k[1:], from)
					if (fwd && (c > 0 || incl && c == 0)) || (!fwd && (c < 0 || incl && c == 0)) {
						exp = append(exp, k)
					}
				}
				if !fwd {
					slices.Reverse(exp)
				}
				if got := iterKeys(o, 1, []byte(from), incl, fwd); !slices.Equal(got, exp) {
					t.Fatalf("from %q incl %v fwd %v: got %q, want %q", from, incl, fwd, got, exp)
				}
			}
		}
	}
}

// TestFrozenOverlayOrderedConcurrently: a frozen overlay's keys are
// ordered by whoever asks first, the checkpoint or a reader; the others
// wait for it (run with -race).
func TestFrozenOverlayOrderedConcurrently(t *testing.T) {
	o := newOverlay(0)
	o.sealed = true
	var want []string
	for i := range 5000 {
		k := fmt.Sprintf("\x01%08d", (i*7919)%5000)
		o.set(k, item{v: []byte{1}})
		want = append(want, k)
	}
	slices.Sort(want)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var got []string
			o.ascend(func(k string, _ item) bool { got = append(got, k); return true })
			if !slices.Equal(got, want) {
				t.Errorf("got %d keys in order %v, want %d", len(got), slices.IsSorted(got), len(want))
			}
		})
	}
	wg.Wait()
}
