package herd_test

import (
	"testing"
	"time"

	"github.com/goherd/herd"
)

// Each wait is in the upper half of base doubled per retry before it,
// capped at max.
func TestBackoff(t *testing.T) {
	base, maxWait := 100*time.Millisecond, time.Second
	for n, full := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		for range 100 {
			if d := herd.Backoff(n, base, maxWait); d < full/2 || d > full {
				t.Fatalf("Backoff(%d) = %v, want between %v and %v", n, d, full/2, full)
			}
		}
	}
}
