package main

import (
	"context"
	"fmt"
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

func TestSheepForeverNoFish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		rec := seedtest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			run(ctx, rec)
		}()

		// An hour of counting: 7200 sheep, one every 500 ms, and no fish.
		time.Sleep(time.Hour - time.Millisecond)
		synctest.Wait()
		lines := rec.Lines()
		if len(lines) != 7200 {
			t.Fatalf("after an hour: %d lines, want 7200", len(lines))
		}
		for i, l := range lines {
			want := fmt.Sprintf("%d sheep", i+1)
			if l.Text != want || l.At != time.Duration(i)*500*time.Millisecond {
				t.Fatalf("line %d = %q at %v, want %q at %v", i, l.Text, l.At, want, time.Duration(i)*500*time.Millisecond)
			}
		}
		cancel()
		<-done
	})
}

func TestProcessPrintsSheepNotFish(t *testing.T) {
	res := seedtest.RunProcess(t, 1200*time.Millisecond)
	if !res.TimedOut {
		t.Fatalf("step 1 exited by itself after %v; it should count forever", res.Elapsed)
	}
	if !strings.HasPrefix(res.Stdout, "1 sheep\n") {
		t.Errorf("stdout = %q, want it to start with %q", res.Stdout, "1 sheep\n")
	}
	if strings.Contains(res.Stdout, "fish") {
		t.Errorf("stdout = %q, want no fish", res.Stdout)
	}
}
