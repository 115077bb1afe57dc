package run

import "testing"

func TestMatches(t *testing.T) {
	marker := "-9223372036854775808"
	for _, tc := range []struct {
		logged, now string
		want        bool
	}{
		{"echo a", "echo a", true},
		{"echo a", "echo b", false},
		{"echo 3 a", "echo " + marker + " a", true},
		{"echo x a", "echo " + marker + " a", false},
		{"echo a b", "echo a\tb", true},
	} {
		if got := matches(tc.logged, tc.now, marker); got != tc.want {
			t.Errorf("matches(%q, %q) = %v, want %v", tc.logged, tc.now, got, tc.want)
		}
	}
}
