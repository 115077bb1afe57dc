package main

import (
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/goherd/herd/examples/seed/internal/seedtest"
)

func TestMain(m *testing.M) {
	seedtest.MaybeRunMain(main)
	os.Exit(m.Run())
}

func TestRunReturnsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := seedtest.NewRecorder()
		start := time.Now()
		run(t.Context(), rec)
		if d := time.Since(start); d != 0 {
			t.Errorf("run took %v of fake time, want it to return at once", d)
		}
		// The goroutines may or may not have printed their first line
		// before run cancelled them, but none of them outlives run for
		// long: nothing counts a second time.
		time.Sleep(time.Second)
		synctest.Wait()
		if n := len(rec.Lines()); n > 2 {
			t.Errorf("%d lines after run returned, want at most the 2 first counts", n)
		}
	})
}

func TestProcessPrintsNothingAndExits(t *testing.T) {
	// With one P the new goroutines wait for main's goroutine to yield,
	// which it never does before the process exits: the outcome is certain
	// rather than a race the program nearly always wins.
	res := seedtest.RunProcess(t, 10*time.Second, "GOMAXPROCS=1")
	if res.TimedOut {
		t.Fatalf("step 3 did not exit by itself within 10s")
	}
	if res.Stdout != "" {
		t.Errorf("stdout = %q, want nothing", res.Stdout)
	}
}
