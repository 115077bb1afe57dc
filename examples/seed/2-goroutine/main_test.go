package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/goherd/herd/examples/seed/internal/seedtest"
)

func TestSheepAndFishInterleave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		rec := seedtest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			run(ctx, rec)
		}()

		const steps = 20
		time.Sleep(steps*500*time.Millisecond - time.Millisecond)
		synctest.Wait()
		lines := rec.Lines()
		if len(lines) != 2*steps {
			t.Fatalf("after %d steps: %d lines, want %d", steps, len(lines), 2*steps)
		}
		// Each 500 ms step prints one sheep and one fish with the same
		// number, in whichever order the scheduler picks.
		for k := range steps {
			at := time.Duration(k) * 500 * time.Millisecond
			pair := []string{lines[2*k].Text, lines[2*k+1].Text}
			slices.Sort(pair)
			want := []string{fmt.Sprint(k+1, " fish"), fmt.Sprint(k+1, " sheep")}
			if !slices.Equal(pair, want) || lines[2*k].At != at || lines[2*k+1].At != at {
				t.Fatalf("step %d = %q at %v and %v, want %q at %v", k, pair, lines[2*k].At, lines[2*k+1].At, want, at)
			}
		}
		cancel()
		<-done
	})
}
