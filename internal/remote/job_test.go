package remote

import (
	"slices"
	"testing"
)

// A run's job numbers are kept as ranges, and read back whole.
func TestSeqRanges(t *testing.T) {
	var r [][2]int
	r = addSeqs(r, []int{1, 2, 3})
	r = addSeqs(r, []int{4, 7, 8})
	r = addSeqs(r, []int{10})
	if want := [][2]int{{1, 4}, {7, 8}, {10, 10}}; !slices.Equal(r, want) {
		t.Errorf("ranges %v, want %v", r, want)
	}
	if got, want := expand(r), []int{1, 2, 3, 4, 7, 8, 10}; !slices.Equal(got, want) {
		t.Errorf("expand = %v, want %v", got, want)
	}
}
