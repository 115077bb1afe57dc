package herd_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/goherd/herd"
)

// gauge tracks how many tasks execute at once. A task suspended in a call
// that may run other tasks on its goroutine (Go, Wait) steps out around it.
type gauge struct {
	now, peak atomic.Int64
}

func (g *gauge) in() {
	n := g.now.Add(1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (g *gauge) out() { g.now.Add(-1) }

// Workers bounds the tasks that run at once even when submitters outside
// the pool find the queue full: they wait, they never run tasks themselves.
func TestWorkersBoundGroupsFromOutside(t *testing.T) {
	for _, workers := range []int{1, 2} {
		synctest.Test(t, func(t *testing.T) {
			p := newPool(t, herd.Config{Workers: workers, QueueSize: 1})
			defer p.Close()
			g := herd.NewGroup(t.Context(), p)
			var running gauge
			var submitters sync.WaitGroup
			for range 3 {
				submitters.Go(func() {
					for range 5 {
						g.Go(func(context.Context) error {
							running.in()
							defer running.out()
							time.Sleep(time.Millisecond)
							return nil
						})
					}
				})
			}
			submitters.Wait()
			if err := g.Wait(); err != nil {
				t.Fatal(err)
			}
			if peak := running.peak.Load(); peak != int64(workers) {
				t.Errorf("Workers: %d: %d tasks ran at once", workers, peak)
			}
		})
	}
}

// A coordinating task fills and waits for a group made outside the pool,
// with the only worker: passing its context makes it help instead of
// waiting for itself.
func TestTaskWaitsForGroupMadeOutside(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 1, QueueSize: 1})
		defer p.Close()
		g := herd.NewGroup(t.Context(), p)
		var ran atomic.Int64
		result := make(chan error, 1)
		p.Go(t.Context(), func(ctx context.Context) error {
			for range 10 {
				g.GoContext(ctx, func(context.Context) error { ran.Add(1); return nil })
			}
			result <- g.WaitContext(ctx)
			return nil
		})
		if err := <-result; err != nil {
			t.Fatal(err)
		}
		if ran.Load() != 10 {
			t.Errorf("%d tasks ran, want 10", ran.Load())
		}
	})
}

func TestGoContextAndWaitContextHonourTheirContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, release := fullPool(t)
		defer p.Close()
		g := herd.NewGroup(t.Context(), p)
		ctx, cancel := context.WithCancel(t.Context())
		go func() { time.Sleep(time.Second); cancel() }()
		if err := g.GoContext(ctx, func(context.Context) error { return nil }); !errors.Is(err, context.Canceled) {
			t.Errorf("GoContext on a full queue, cancelled = %v, want context.Canceled", err)
		}
		close(release)

		stop := errors.New("stop waiting")
		ctx, cancelCause := context.WithCancelCause(t.Context())
		g = herd.NewGroup(t.Context(), p)
		g.Go(func(ctx context.Context) error { <-ctx.Done(); return context.Cause(ctx) })
		go func() { time.Sleep(time.Second); cancelCause(stop) }()
		if err := g.WaitContext(ctx); !errors.Is(err, stop) {
			t.Errorf("WaitContext, cancelled = %v, want the tasks cancelled with its cause", err)
		}
	})
}

func TestGroupLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 8})
		defer p.Close()
		g := herd.NewGroup(t.Context(), p)
		g.SetLimit(2)
		var running gauge
		others := herd.NewGroup(t.Context(), p)
		var othersRunning gauge
		var submitter sync.WaitGroup
		submitter.Go(func() {
			for range 10 {
				g.Go(func(context.Context) error {
					running.in()
					defer running.out()
					time.Sleep(time.Second)
					return nil
				})
			}
		})
		for range 10 {
			others.Go(func(context.Context) error {
				othersRunning.in()
				defer othersRunning.out()
				time.Sleep(time.Second)
				return nil
			})
		}
		synctest.Wait() // the limited group's submitter is blocked
		err := others.Wait()
		submitter.Wait()
		if err := errors.Join(err, g.Wait()); err != nil {
			t.Fatal(err)
		}
		if peak := running.peak.Load(); peak != 2 {
			t.Errorf("limited group: %d tasks at once, want 2", peak)
		}
		if peak := othersRunning.peak.Load(); peak < 6 {
			t.Errorf("unlimited group beside it: %d tasks at once, want the free workers", peak)
		}
	})
}

func TestGroupTryGo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 4})
		defer p.Close()
		g := herd.NewGroup(t.Context(), p)
		g.SetLimit(1)
		release := make(chan struct{})
		if !g.TryGo(func(context.Context) error { <-release; return nil }) {
			t.Fatal("TryGo on an empty group = false")
		}
		if g.TryGo(func(context.Context) error { return errors.New("ran past the limit") }) {
			t.Error("TryGo past the limit = true")
		}
		close(release)
		synctest.Wait()
		if !g.TryGo(func(context.Context) error { return nil }) {
			t.Error("TryGo after the first finished = false")
		}
		if err := g.Wait(); err != nil {
			t.Errorf("Wait = %v", err)
		}
		defer func() {
			if v := recover(); v == nil || !strings.Contains(v.(string), "SetLimit") {
				t.Errorf("SetLimit with a task running: recovered %v, want a panic", v)
			}
			close(release)
		}()
		g = herd.NewGroup(t.Context(), p)
		release = make(chan struct{})
		g.Go(func(context.Context) error { <-release; return nil })
		g.SetLimit(3)
	})
}

func TestShutdownAfterCloseIsNil(t *testing.T) {
	p := newPool(t, herd.Config{})
	p.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for range 100 {
		if err := p.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown after Close = %v, want nil", err)
		}
	}
}

// Tasks waiting for the rate limiter when Shutdown gives up never ran.
func TestShutdownCountsRateLimitedTasksAsNotRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 2, QueueSize: 10, Rate: 1})
		g := herd.NewGroup(t.Context(), p)
		var ran atomic.Int64
		for range 10 {
			g.Go(func(context.Context) error { ran.Add(1); return nil })
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2500*time.Millisecond)
		defer cancel()
		err := p.Shutdown(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "7 queued tasks never ran") {
			t.Errorf("Shutdown = %v, want 7 tasks never ran", err)
		}
		if ran.Load() != 3 {
			t.Errorf("%d tasks ran, want 3", ran.Load())
		}
		err = g.Wait()
		if n := strings.Count(err.Error(), herd.ErrNotRun.Error()); n != 7 || errors.Is(err, context.Canceled) {
			t.Errorf("group Wait = %v, want ErrNotRun 7 times, nothing else", err)
		}
		if m := p.Metrics(); m.NotRun != 7 || m.Failed != 0 || m.Succeeded != 3 {
			t.Errorf("Metrics = %+v, want 3 succeeded, 7 not run", m)
		}
	})
}

// A Backoff longer than the default MaxBackoff raises that default.
func TestLongBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 1, Retries: 1, Backoff: 30 * time.Second, OnError: func(error) {}})
		var at []time.Time
		p.Go(t.Context(), func(context.Context) error { at = append(at, time.Now()); return errors.New("again") })
		p.Close()
		if len(at) != 2 {
			t.Fatalf("%d attempts, want 2", len(at))
		}
		if gap := at[1].Sub(at[0]); gap < 15*time.Second || gap > 30*time.Second {
			t.Errorf("wait before the retry = %v, want within [15s, 30s]", gap)
		}
	})
}

// A task filling a limited group of its own helps while it waits for a
// token, since the tokens are held by tasks queued behind it.
func TestGroupLimitInsideATask(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 1, QueueSize: 4})
		defer p.Close()
		var ran atomic.Int64
		outer := herd.NewGroup(t.Context(), p)
		outer.Go(func(ctx context.Context) error {
			g := herd.NewGroup(ctx, p)
			g.SetLimit(1)
			for range 5 {
				g.Go(func(context.Context) error { ran.Add(1); return nil })
			}
			return g.Wait()
		})
		if err := outer.Wait(); err != nil || ran.Load() != 5 {
			t.Errorf("Wait = %v, %d tasks ran; want nil, 5", err, ran.Load())
		}
	})
}

func TestGroupLimitWaitEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 2})
		defer p.Close()
		g := herd.NewFailFastGroup(t.Context(), p)
		g.SetLimit(1)
		release := make(chan struct{})
		g.Go(func(context.Context) error { <-release; return errors.New("first fails") })

		ctx, cancel := context.WithCancel(t.Context())
		go func() { time.Sleep(time.Second); cancel() }()
		if err := g.GoContext(ctx, func(context.Context) error { return nil }); !errors.Is(err, context.Canceled) {
			t.Errorf("GoContext waiting for a token, cancelled = %v", err)
		}
		go func() { time.Sleep(time.Second); close(release) }()
		if err := g.Go(func(context.Context) error { return nil }); err == nil || err.Error() != "first fails" {
			t.Errorf("Go waiting for a token when the group fails = %v, want the group's error", err)
		}
		if g.TryGo(func(context.Context) error { return nil }) {
			t.Error("TryGo on a failed group = true")
		}
		g.Wait()

		g = herd.NewGroup(t.Context(), p)
		g.SetLimit(0)
		g.SetLimit(-1) // no limit after all
		for range 3 {
			g.Go(func(context.Context) error { return nil })
		}
		if err := g.Wait(); err != nil {
			t.Errorf("Wait after SetLimit(-1) = %v", err)
		}
	})
}

func TestGroupTryGoOnFullQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, release := fullPool(t)
		defer p.Close()
		g := herd.NewGroup(t.Context(), p)
		if g.TryGo(func(context.Context) error { return errors.New("ran") }) {
			t.Error("TryGo on a full queue = true")
		}
		close(release)
		if err := g.Wait(); err != nil {
			t.Errorf("Wait = %v; a task TryGo refused leaves no trace", err)
		}
	})
}

// A rate-limited task whose group is cancelled while it waits to start,
// or to start again, ends with the group's error or its own last one.
func TestRateLimitedTaskOfCancelledGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 2, Rate: 1, Retries: 3, Backoff: time.Millisecond})
		defer p.Close()
		ctx, cancel := context.WithCancel(t.Context())
		g := herd.NewGroup(ctx, p)
		errFlaky := errors.New("flaky")
		g.Go(func(context.Context) error { return errFlaky }) // retries wait for the limiter
		synctest.Wait()
		g.Go(func(context.Context) error { return errors.New("never ran") }) // waits for its first start
		synctest.Wait()
		cancel()
		err := g.Wait()
		if !errors.Is(err, errFlaky) || !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "never ran") {
			t.Errorf("Wait = %v, want flaky and context.Canceled", err)
		}
	})
}

// A queued task never waits behind a slow one while a worker is idle.
func TestNoTaskWaitsBehindABusyWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 2, QueueSize: 64})
		defer p.Close()
		gate1, gate2, gate3 := make(chan struct{}), make(chan struct{}), make(chan struct{})
		wait := func(gate chan struct{}) func(context.Context) error {
			return func(context.Context) error { <-gate; return nil }
		}
		p.Go(t.Context(), wait(gate1))
		p.Go(t.Context(), wait(gate2))
		synctest.Wait() // both workers busy
		p.Go(t.Context(), wait(gate3))
		var quick atomic.Int64
		for range 19 {
			p.Go(t.Context(), func(context.Context) error { quick.Add(1); return nil })
		}
		close(gate2) // its worker takes gate3's task
		synctest.Wait()
		close(gate1) // the other worker runs the rest of the queue
		synctest.Wait()
		if n := quick.Load(); n != 19 {
			t.Errorf("%d of 19 quick tasks ran while a worker was idle", n)
		}
		// The worker busy with gate3 may not have published its last
		// success yet: Metrics counts that one as running.
		if m := p.Metrics(); m.Waiting != 0 || m.Running < 1 || m.Submitted != 22 || m.Succeeded+uint64(m.Running) != 22 {
			t.Errorf("Metrics = %+v, want 22 submitted, 21 succeeded or running, 1 running, none waiting", m)
		}
		close(gate3)
	})
}

// Submitters, groups and resizes all at once: every task accepted runs
// once, and Close returns with nothing left.
func TestStressSubmitResizeClose(t *testing.T) {
	for round := range 5 {
		p := newPool(t, herd.Config{Workers: 4, QueueSize: 8})
		var accepted, ran atomic.Int64
		task := func(context.Context) error { ran.Add(1); return nil }
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Go(func() { // resizes until the submitters are done
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				p.Resize(1 + (n*7+round)%8)
				time.Sleep(50 * time.Microsecond)
			}
		})
		var submitters sync.WaitGroup
		for s := range 4 {
			submitters.Go(func() {
				g := herd.NewGroup(context.Background(), p)
				for i := range 2000 {
					var err error
					if s%2 == 0 {
						err = p.Go(context.Background(), task)
					} else {
						err = g.Go(task)
					}
					if err == nil {
						accepted.Add(1)
					}
					if i%500 == 0 {
						time.Sleep(time.Millisecond) // let the workers go idle now and then
					}
				}
				if err := g.Wait(); err != nil {
					t.Errorf("group: %v", err)
				}
			})
		}
		submitters.Wait()
		close(stop)
		wg.Wait()
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if accepted.Load() != 8000 || ran.Load() != 8000 {
			t.Fatalf("round %d: accepted %d, ran %d; want 8000 each", round, accepted.Load(), ran.Load())
		}
		if m := p.Metrics(); m.Submitted != 8000 || m.Succeeded != 8000 || m.Waiting != 0 || m.Running != 0 {
			t.Fatalf("round %d: Metrics = %+v", round, m)
		}
	}
}
