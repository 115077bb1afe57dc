package main

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/goherd/herd/examples/seed/internal/seedtest"
)

func TestPrintsOneSheep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := seedtest.NewRecorder()
		run(t.Context(), rec)
		// Let count run to its end: nothing more may be printed.
		time.Sleep(5 * time.Second)
		synctest.Wait()
		want := []seedtest.Line{{At: 0, Text: "sheep"}}
		if got := rec.Lines(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("output = %v, want %v", got, want)
		}
	})
}
