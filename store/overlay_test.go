package store

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
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
		})
	}
}

func checkOverlayOrder(t *testing.T, step int, o *overlay, model map[string]bool) {
	t.Helper()
	want := slices.Sorted(maps.Keys(model))
	var got []string
	o.ascend(func(k string, it item) bool {
		if string(it.v) != k {
			t.Fatalf("step %d: %q holds %q", step, k, it.v)
		}
		got = append(got, k)
		return true
	})
	if !slices.Equal(got, want) {
		t.Fatalf("step %d: ascend gave %q, want %q", step, got, want)
	}
	it := &ovIter{o: o, id: 1}
	it.place(nil, true, false)
	got = got[:0]
	for {
		k, ok := it.peek()
		if !ok {
			break
		}
		got = append(got, k)
		it.pos++
	}
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Fatalf("step %d: backwards, the iterator gave %q, want %q", step, got, want)
	}
}

// TestFrozenOverlayOrderedConcurrently: a frozen overlay's pending keys are
// ordered by whoever asks first, the checkpoint or a reader; the others
// wait for it (run with -race).
func TestFrozenOverlayOrderedConcurrently(t *testing.T) {
	o := newOverlay(0)
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
