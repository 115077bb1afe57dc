package herd

import (
	"math/rand/v2"
	"time"
)

// Backoff is the wait before retry n of a task (1 for the first): base,
// doubled for each retry before it, at most max, and drawn at random from
// the upper half of that, so that the retries of many tasks that failed
// together spread out but never come sooner than half the wait. A pool
// waits this long between a task's retries ([Config.Backoff]); herd's queue
// between a job's attempts.
func Backoff(n int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + rand.N(d/2+1)
}
