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

// TestOverlayOrder: keys set, unset and set again, with the order asked
// for at random moments between, come out of ascend and of the cursor
// iterator in order, each once, and only while set.
func TestOverlayOrder(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			o := newOverlay(0)
			model := map[string]bool{}
			for step := range 2000 {
				k := string([]byte{1, byte('a' + rng.IntN(26)), byte('a' + rng.IntN(26))})
				switch rng.IntN(4) {
				case 0, 1:
					o.set(k, item{v: []byte(k)})
					model[k] = true
				case 2:
					if model[k] {
						o.unset(k)
						delete(model, k)
					}
				case 3:
					checkOverlayOrder(t, step, o, model)
				}
			}
			checkOverlayOrder(t, -1, o, model)
			o.sealed = true // as frozen: one sort, no B-tree
			checkOverlayOrder(t, -2, o, model)
			checkIterFrom(t, o, model)
		})
	}
}

func checkOverlayOrder(t *testing.T, step int, o *overlay, model map[string]bool) {
	t.Helper()
	want := slices.Sorted(maps.Keys(model))
	got := iterKeys(o, nil, true, true)
	for _, k := range got {
		if v := o.m[k].v; string(v) != k {
			t.Fatalf("step %d: %q holds %q", step, k, v)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("step %d: forwards, the iterator gave %q, want %q", step, got, want)
	}
	got = iterKeys(o, nil, true, false)
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Fatalf("step %d: backwards, the iterator gave %q, want %q", step, got, want)
	}
}

// iterKeys returns the keys of bucket 1 that an iterator placed at from
// (see ovIter.place) gives.
func iterKeys(o *overlay, from []byte, incl, fwd bool) []string {
	it := &ovIter{o: o, id: 1}
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

// checkIterFrom places a sealed overlay's iterator at every key and
// between keys, both ways, with and without the key itself.
func checkIterFrom(t *testing.T, o *overlay, model map[string]bool) {
	t.Helper()
	want := slices.Sorted(maps.Keys(model))
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
				if got := iterKeys(o, []byte(from), incl, fwd); !slices.Equal(got, exp) {
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
