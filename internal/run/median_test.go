package run

import (
	"slices"
	"testing"
	"time"
)

func TestMedianTracker(t *testing.T) {
	var m medianTracker
	for i, d := range []time.Duration{5, 1, 9, 3, 7} {
		m.add(d)
		sorted := []time.Duration{5, 1, 9, 3, 7}[:i+1]
		slices.Sort(sorted)
		if want := sorted[i/2]; m.median() != want {
			t.Errorf("after %d adds, median = %v, want %v", i+1, m.median(), want)
		}
	}
}
