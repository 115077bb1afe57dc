package main

import (
	"fmt"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/goherd/herd/examples/seed/internal/seedtest"
)

func TestEveryResultExactlyOnce(t *testing.T) {
	for _, tc := range []struct{ jobs, workers int }{
		{1, 1}, {25, 1}, {25, 4}, {25, 32}, {0, 3},
	} {
		t.Run(fmt.Sprintf("jobs=%d/workers=%d", tc.jobs, tc.workers), func(t *testing.T) {
			// synctest checks that every worker has exited when run
			// returns: the bubble fails the test if one is left blocked.
			synctest.Test(t, func(t *testing.T) {
				rec := seedtest.NewRecorder()
				run(rec, tc.jobs, tc.workers)
				got := rec.Texts()
				slices.Sort(got)
				var want []string
				a, b := 0, 1
				for n := range tc.jobs {
					want = append(want, fmt.Sprintf("fib(%d) = %d", n, a))
					a, b = b, a+b
				}
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("results = %q, want %q", got, want)
				}
			})
		})
	}
}
