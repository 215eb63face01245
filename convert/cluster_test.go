package convert

import "testing"

// TestGraphemeClusters checks that UCS-2 segments do not cut a grapheme
// cluster (Unicode UAX #29) when keeping it whole costs no extra segment,
// and never cut a surrogate pair.
func TestGraphemeClusters(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		sizes []int // UTF-16 units per segment
	}{
		{"flag moves whole to the next part", rep("я", 65) + "🇩🇪" + rep("я", 10), []int{65, 14}},
		{"skin-tone emoji moves whole", rep("я", 65) + "👍🏽" + rep("я", 10), []int{65, 14}},
		{"combining accent stays with its letter", rep("я", 66) + "q\u0303" + rep("я", 5), []int{66, 7}},
		{"ZWJ family sequence moves whole", rep("я", 60) + "👨‍👩‍👧‍👦" + rep("я", 10), []int{60, 21}},
		{"cluster kept whole when the next part still has room", rep("я", 65) + "🇩🇪" + rep("я", 63), []int{65, 67}},
		{"cluster split when keeping it would cost a segment", rep("я", 65) + "🇩🇪" + rep("я", 64), []int{67, 66}},
		{"surrogate pair never split even then", rep("я", 66) + "😀" + rep("я", 65), []int{66, 67}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEncode(t, tc.text, Options{})
			if e.Coding != UCS2 {
				t.Fatalf("coding %v", e.Coding)
			}
			var sizes []int
			for _, s := range e.Segments {
				sizes = append(sizes, len(s.Payload)/2)
			}
			if !equalInts(sizes, tc.sizes) {
				t.Errorf("sizes %v, want %v", sizes, tc.sizes)
			}
			if got := checkSegments(t, e); got != tc.text {
				t.Errorf("segments decode to %q", got)
			}
		})
	}
}
