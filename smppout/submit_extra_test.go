package smppout

import (
	"testing"
	"time"
)

func TestRelativeValidity(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, ""},
		{48 * time.Hour, "000002000000000R"},
		{90 * time.Minute, "000000013000000R"},
		{36*time.Hour + 61*time.Second, "000001120101000R"},
		{400 * 24 * time.Hour, "010110000000000R"}, // 13 months of 30 days (1 year 1 month) + 10 days
		{200 * 365 * 24 * time.Hour, "991129235959000R"},
	}
	for _, tc := range tests {
		if got := relativeValidity(tc.d); got != tc.want {
			t.Errorf("relativeValidity(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
