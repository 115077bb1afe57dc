package main

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/goherd/herd/examples/seed/internal/seedtest"
)

func TestWaitsForEachGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := seedtest.NewRecorder()
		start := time.Now()
		run(rec)
		// run returns only after both goroutines have counted to five and
		// slept their last half second: 2 × 5 × 500 ms.
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("run returned after %v, want 5s", d)
		}
		var want []seedtest.Line
		for i, thing := range []string{"sheep", "fish"} {
			for n := 1; n <= 5; n++ {
				at := time.Duration(i*5+n-1) * 500 * time.Millisecond
				want = append(want, seedtest.Line{At: at, Text: fmt.Sprint(n, " ", thing)})
			}
		}
		got := rec.Lines()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("output = %v, want %v", got, want)
		}
	})
}
