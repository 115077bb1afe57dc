package main

import (
	"os"
	"strings"
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

func TestProcessExitsWithoutWaiting(t *testing.T) {
	// The process exits as soon as main returns; its goroutines count
	// forever, so a process that waited for them would never end. It
	// nearly always prints nothing, but a goroutine may get in its first
	// line before main's goroutine reaches exit (the scheduler may preempt
	// main on a busy machine, even with one P): only a second count would
	// show the goroutines outliving main.
	res := seedtest.RunProcess(t, 10*time.Second, "GOMAXPROCS=1")
	if res.TimedOut {
		t.Fatalf("step 3 did not exit by itself within 10s")
	}
	for line := range strings.SplitSeq(strings.TrimSuffix(res.Stdout, "\n"), "\n") {
		if line != "" && line != "1 sheep" && line != "1 fish" {
			t.Errorf("stdout = %q, want nothing but, at most, the first counts", res.Stdout)
			break
		}
	}
}
