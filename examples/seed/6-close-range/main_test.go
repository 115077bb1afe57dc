package main

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/goherd/herd/examples/seed/internal/seedtest"
)

func TestRangeEndsAfterFive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := seedtest.NewRecorder()
		start := time.Now()
		run(rec)
		// The range ends when count closes the channel, after its fifth
		// send and last sleep.
		if d := time.Since(start); d != 2500*time.Millisecond {
			t.Errorf("run returned after %v, want 2.5s", d)
		}
		var want []seedtest.Line
		for i := range 5 {
			want = append(want, seedtest.Line{At: time.Duration(i) * 500 * time.Millisecond, Text: "sheep"})
		}
		if got := rec.Lines(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("output = %v, want %v", got, want)
		}
	})
}
