package herd_test

import (
	"context"
	"errors"
	"fmt"
	"go/build"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/goherd/herd"
	"github.com/goherd/herd/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := testutil.Leaked("github.com/goherd/herd."); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func TestRootImportsStandardLibraryOnly(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") {
			t.Errorf("package herd imports %q; it must import the standard library only", imp)
		}
	}
}

func newPool(t *testing.T, cfg herd.Config) *herd.Pool {
	t.Helper()
	p, err := herd.New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return p
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []herd.Config{
		{Workers: -1},
		{QueueSize: -1},
		{TaskTimeout: -time.Second},
		{Retries: -1},
		{Backoff: -1},
		{MaxBackoff: -1},
		{Backoff: time.Second, MaxBackoff: 100 * time.Millisecond},
		{Rate: -1},
		{Burst: -1},
	} {
		if p, err := herd.New(cfg); err == nil || !strings.HasPrefix(err.Error(), "herd: new pool: ") {
			t.Errorf("New(%+v) = %v, %v; want a herd: new pool error", cfg, p, err)
			if p != nil {
				p.Close()
			}
		}
	}
}

func TestPoolRunsEveryTask(t *testing.T) {
	for _, workers := range []int{0, 1, 3, 64} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			p := newPool(t, herd.Config{Workers: workers})
			var n atomic.Int64
			const tasks = 1000
			for range tasks {
				if err := p.Go(t.Context(), func(context.Context) error { n.Add(1); return nil }); err != nil {
					t.Fatalf("Go: %v", err)
				}
			}
			if err := p.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if got := n.Load(); got != tasks {
				t.Errorf("ran %d tasks, want %d", got, tasks)
			}
			m := p.Metrics()
			if m.Submitted != tasks || m.Succeeded != tasks || m.Workers != 0 || m.Running != 0 || m.Waiting != 0 {
				t.Errorf("Metrics after Close = %+v, want %d submitted and succeeded, nothing left", m, tasks)
			}
		})
	}
}

// fullPool returns a pool of one worker, busy until release is closed,
// and a queue of one, full.
func fullPool(t *testing.T) (p *herd.Pool, release chan struct{}) {
	p = newPool(t, herd.Config{Workers: 1, QueueSize: 1})
	release = make(chan struct{})
	started := make(chan struct{})
	p.Go(t.Context(), func(context.Context) error {
		close(started)
		<-release
		return nil
	})
	<-started
	p.Go(t.Context(), func(context.Context) error { return nil }) // fills the queue
	return p, release
}

func TestGoBlocksWhenFullAndHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, release := fullPool(t)

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		ran := false
		start := time.Now()
		err := p.Go(ctx, func(context.Context) error { ran = true; return nil })
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
			t.Errorf("Go on a full pool = %v after %v, want context.DeadlineExceeded after 1s", err, time.Since(start))
		}
		if p.TryGo(func(context.Context) error { ran = true; return nil }) {
			t.Errorf("TryGo on a full pool = true, want false")
		}

		// A cancelled context is refused even when there is room.
		close(release)
		p.Close()
		if ran {
			t.Errorf("a task refused by Go or TryGo ran")
		}
		if m := p.Metrics(); m.Submitted != 2 || m.Succeeded != 2 {
			t.Errorf("Metrics = %+v, want 2 submitted and succeeded", m)
		}
	})
}

func TestGoWithDoneContextNeverRuns(t *testing.T) {
	p := newPool(t, herd.Config{Workers: 2})
	defer p.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.Go(ctx, func(context.Context) error { t.Error("task ran"); return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Go(cancelled ctx) = %v, want context.Canceled", err)
	}
}

func TestGoAfterCloseIsErrClosed(t *testing.T) {
	p := newPool(t, herd.Config{})
	p.Close()
	if err := p.Go(t.Context(), func(context.Context) error { return nil }); !errors.Is(err, herd.ErrClosed) {
		t.Errorf("Go after Close = %v, want ErrClosed", err)
	}
	if p.TryGo(func(context.Context) error { return nil }) {
		t.Errorf("TryGo after Close = true, want false")
	}
	if err := p.Resize(3); !errors.Is(err, herd.ErrClosed) {
		t.Errorf("Resize after Close = %v, want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

// A submitter blocked on a full queue when the pool starts closing gets its
// task in once there is room: a task Go accepts is never lost.
func TestBlockedGoDuringClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, release := fullPool(t)

		var ran atomic.Bool
		errc := make(chan error)
		go func() {
			errc <- p.Go(context.Background(), func(context.Context) error { ran.Store(true); return nil })
		}()
		synctest.Wait() // the submitter is blocked
		closed := make(chan error)
		go func() { closed <- p.Close() }()
		close(release)
		if err := <-errc; err != nil {
			t.Errorf("blocked Go = %v, want nil", err)
		}
		if err := <-closed; err != nil {
			t.Errorf("Close = %v", err)
		}
		if !ran.Load() {
			t.Errorf("the task Go accepted did not run")
		}
	})
}

func TestConcurrentSubmitAndClose(t *testing.T) {
	// Every task Go accepted runs; every task it refused does not.
	for range 20 {
		p := newPool(t, herd.Config{Workers: 2, QueueSize: 4})
		var accepted, ran atomic.Int64
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 200 {
					if p.Go(context.Background(), func(context.Context) error { ran.Add(1); return nil }) == nil {
						accepted.Add(1)
					}
				}
			})
		}
		p.Close()
		wg.Wait()
		if accepted.Load() != ran.Load() {
			t.Fatalf("accepted %d tasks, ran %d", accepted.Load(), ran.Load())
		}
	}
}

func TestResize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 2, QueueSize: 100})
		defer p.Close()
		var running, peak atomic.Int64
		task := func(context.Context) error {
			n := running.Add(1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			time.Sleep(time.Second)
			running.Add(-1)
			return nil
		}
		run := func(n int) int64 {
			peak.Store(0)
			for range n {
				p.Go(t.Context(), task)
			}
			time.Sleep(time.Hour)
			synctest.Wait()
			return peak.Load()
		}
		if got := run(20); got != 2 {
			t.Errorf("peak concurrency with 2 workers = %d", got)
		}
		if err := p.Resize(5); err != nil {
			t.Fatal(err)
		}
		if got := run(20); got != 5 {
			t.Errorf("peak concurrency after Resize(5) = %d", got)
		}
		if err := p.Resize(1); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := p.Metrics().Workers; got != 1 {
			t.Errorf("workers after Resize(1) on an idle pool = %d, want 1", got)
		}
		if got := run(10); got != 1 {
			t.Errorf("peak concurrency after Resize(1) = %d", got)
		}
		if err := p.Resize(0); err == nil {
			t.Errorf("Resize(0) = nil, want an error")
		}
	})
}

func TestShrinkWhileBusyThenGrow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 4, QueueSize: 100})
		for range 8 {
			p.Go(t.Context(), func(context.Context) error { time.Sleep(time.Second); return nil })
		}
		p.Resize(1)
		p.Resize(3) // cancels two of the three pending exits
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := p.Metrics().Workers; got != 3 {
			t.Errorf("workers = %d, want 3", got)
		}
		p.Close()
	})
}

func TestShutdownDrainsWithinDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 2, QueueSize: 10})
		var done atomic.Int64
		for range 10 {
			p.Go(t.Context(), func(context.Context) error { time.Sleep(time.Second); done.Add(1); return nil })
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown = %v, want nil", err)
		}
		if done.Load() != 10 {
			t.Errorf("%d tasks done, want 10", done.Load())
		}
	})
}

func TestShutdownDeadlineCancelsAndReportsNotRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 2, QueueSize: 10})
		g := herd.NewGroup(t.Context(), p)
		var cancelled atomic.Int64
		slow := func(ctx context.Context) error {
			<-ctx.Done()
			cancelled.Add(1)
			return context.Cause(ctx)
		}
		for range 2 {
			p.Go(t.Context(), slow)
		}
		for range 3 {
			p.Go(t.Context(), slow)
		}
		for range 2 {
			g.Go(slow)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		err := p.Shutdown(ctx)
		if time.Since(start) != time.Second {
			t.Errorf("Shutdown returned after %v, want 1s", time.Since(start))
		}
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "5 queued tasks never ran") {
			t.Errorf("Shutdown = %v, want DeadlineExceeded and 5 tasks never ran", err)
		}
		if cancelled.Load() != 2 {
			t.Errorf("%d running tasks saw cancellation, want 2", cancelled.Load())
		}
		if err := g.Wait(); !errors.Is(err, herd.ErrNotRun) {
			t.Errorf("group Wait = %v, want ErrNotRun", err)
		}
		if m := p.Metrics(); m.NotRun != 5 || m.Failed != 2 || m.Succeeded != 0 {
			t.Errorf("Metrics = %+v, want 5 not run, 2 failed", m)
		}
	})
}

func TestPanicReachesCloseWithStack(t *testing.T) {
	p := newPool(t, herd.Config{Workers: 1})
	p.Go(t.Context(), func(context.Context) error { panicky(); return nil })
	p.Go(t.Context(), func(context.Context) error { return nil }) // the worker survives
	err := p.Close()
	pe, ok := errors.AsType[*herd.PanicError](err)
	if !ok {
		t.Fatalf("Close = %v, want a *PanicError", err)
	}
	if pe.Value != "boom" || !strings.Contains(string(pe.Stack), "herd_test.panicky") {
		t.Errorf("PanicError = %v with stack\n%s\nwant value boom and a stack through panicky", pe.Value, pe.Stack)
	}
	if m := p.Metrics(); m.Panicked != 1 || m.Succeeded != 1 {
		t.Errorf("Metrics = %+v, want 1 panicked, 1 succeeded", m)
	}
}

func panicky() { panic("boom") }

func TestOnErrorSeesFailuresAndPanics(t *testing.T) {
	var mu sync.Mutex
	var got []error
	p := newPool(t, herd.Config{Workers: 2, OnError: func(err error) {
		mu.Lock()
		got = append(got, err)
		mu.Unlock()
	}})
	errBad := errors.New("bad")
	p.Go(t.Context(), func(context.Context) error { return errBad })
	p.Go(t.Context(), func(context.Context) error { panic(errBad) })
	if err := p.Close(); err != nil {
		t.Errorf("Close = %v, want nil: OnError took the panic", err)
	}
	if len(got) != 2 || !errors.Is(got[0], errBad) || !errors.Is(got[1], errBad) {
		t.Errorf("OnError saw %v, want two errors wrapping %v", got, errBad)
	}
}

func TestGoexitDoesNotShrinkThePool(t *testing.T) {
	var mu sync.Mutex
	var got []error
	p := newPool(t, herd.Config{Workers: 1, OnError: func(err error) { mu.Lock(); got = append(got, err); mu.Unlock() }})
	p.Go(t.Context(), func(context.Context) error { runtime.Goexit(); return nil })
	var ran atomic.Bool
	p.Go(t.Context(), func(context.Context) error { ran.Store(true); return nil })
	p.Close()
	if !ran.Load() {
		t.Errorf("the task after a Goexit did not run")
	}
	if len(got) != 1 || !strings.Contains(got[0].Error(), "Goexit") {
		t.Errorf("OnError saw %v, want one Goexit error", got)
	}
}

// The most reported bug of other pools: a task submitting into its own full
// pool waits for a worker that is itself.
func TestNestedSubmitIntoFullPoolDoesNotDeadlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 1, QueueSize: 1})
		var ran atomic.Int64
		var wg sync.WaitGroup
		var spawn func(depth int) func(context.Context) error
		spawn = func(depth int) func(context.Context) error {
			wg.Add(1)
			return func(ctx context.Context) error {
				defer wg.Done()
				ran.Add(1)
				if depth == 0 {
					return nil
				}
				for range 3 {
					if err := p.Go(ctx, spawn(depth-1)); err != nil {
						t.Errorf("nested Go: %v", err)
						wg.Done()
					}
				}
				return nil
			}
		}
		p.Go(t.Context(), spawn(4))
		wg.Wait() // every task has run; Close would refuse nested submits
		p.Close()
		if want := int64(1 + 3 + 9 + 27 + 81); ran.Load() != want {
			t.Errorf("ran %d tasks, want %d", ran.Load(), want)
		}
	})
}

// Tasks waiting for their own subtasks help run the queue, and the tasks
// run on a helping goroutine still count against Workers.
func TestNestedGroupWaitDoesNotDeadlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 2, QueueSize: 1})
		defer p.Close()
		var running gauge
		var leaves atomic.Int64
		var tree func(depth int) func(context.Context) error
		tree = func(depth int) func(context.Context) error {
			return func(ctx context.Context) error {
				running.in()
				defer running.out()
				if depth == 0 {
					time.Sleep(time.Millisecond)
					leaves.Add(1)
					return nil
				}
				g := herd.NewGroup(ctx, p)
				running.out() // suspended while it submits and waits
				defer running.in()
				for range 3 {
					g.Go(tree(depth - 1))
				}
				return g.Wait()
			}
		}
		g := herd.NewGroup(t.Context(), p)
		g.Go(tree(5))
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		if leaves.Load() != 243 {
			t.Errorf("%d leaves, want 243", leaves.Load())
		}
		if peak := running.peak.Load(); peak > 2 {
			t.Errorf("%d tasks ran at once, want at most 2", peak)
		}
	})
}

func TestTaskTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []error
		p := newPool(t, herd.Config{Workers: 1, TaskTimeout: time.Second, OnError: func(err error) { mu.Lock(); got = append(got, err); mu.Unlock() }})
		start := time.Now()
		p.Go(t.Context(), func(ctx context.Context) error {
			<-ctx.Done()
			if time.Since(start) != time.Second {
				t.Errorf("task cancelled after %v, want 1s", time.Since(start))
			}
			return context.Cause(ctx)
		})
		p.Close()
		if len(got) != 1 || !errors.Is(got[0], herd.ErrTimeout) {
			t.Errorf("errors = %v, want ErrTimeout", got)
		}
	})
}

func TestRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 1, Retries: 4, Backoff: time.Second, MaxBackoff: 4 * time.Second, OnError: func(error) {}})
		var at []time.Duration
		start := time.Now()
		errAgain := errors.New("again")
		p.Go(t.Context(), func(context.Context) error {
			at = append(at, time.Since(start))
			return errAgain
		})
		p.Close()
		if len(at) != 5 {
			t.Fatalf("%d attempts, want 5 (1 + 4 retries)", len(at))
		}
		// Waits double from 1s, capped at 4s, each jittered into its upper half.
		for i, max := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
			gap := at[i+1] - at[i]
			if gap < max/2 || gap > max {
				t.Errorf("wait before retry %d = %v, want within [%v, %v]", i+1, gap, max/2, max)
			}
		}
		if m := p.Metrics(); m.Failed != 1 {
			t.Errorf("Metrics.Failed = %d, want 1: retries count once", m.Failed)
		}
	})
}

func TestRetrySucceedsAndStopsOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 1, Retries: 10, Backoff: time.Second})
		var n atomic.Int64
		p.Go(t.Context(), func(context.Context) error {
			if n.Add(1) < 3 {
				return errors.New("not yet")
			}
			return nil
		})
		synctest.Wait()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n.Load() != 3 || p.Metrics().Succeeded != 1 {
			t.Errorf("%d attempts, %+v; want success on the third", n.Load(), p.Metrics())
		}
		p.Close()
	})
}

func TestRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 4, QueueSize: 100, Rate: 10, Burst: 3})
		var mu sync.Mutex
		var starts []time.Duration
		begin := time.Now()
		for range 23 {
			p.Go(t.Context(), func(context.Context) error {
				mu.Lock()
				starts = append(starts, time.Since(begin))
				mu.Unlock()
				return nil
			})
		}
		p.Close()
		// A burst of 3 at once, then one every 100ms: the last at 2s.
		if len(starts) != 23 {
			t.Fatalf("%d tasks started, want 23", len(starts))
		}
		if last := starts[len(starts)-1]; last != 2*time.Second {
			t.Errorf("last start at %v, want 2s", last)
		}
		for i, s := range starts[:3] {
			if s != 0 {
				t.Errorf("start %d at %v, want 0 (burst)", i, s)
			}
		}
	})
}

func TestMetricsWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 2, QueueSize: 10})
		release := make(chan struct{})
		for range 5 {
			p.Go(t.Context(), func(context.Context) error { <-release; time.Sleep(time.Millisecond); return nil })
		}
		p.Go(t.Context(), func(context.Context) error { return errors.New("x") })
		synctest.Wait()
		m := p.Metrics()
		want := herd.Metrics{Workers: 2, Submitted: 6, Waiting: 4, Running: 2}
		if m != want {
			t.Errorf("Metrics = %+v, want %+v", m, want)
		}
		close(release)
		for range 40 {
			p.Go(t.Context(), func(context.Context) error { time.Sleep(time.Millisecond); return nil })
		}
		p.Close()
		m = p.Metrics()
		if m.Succeeded != 45 || m.Failed != 1 || m.Running != 0 || m.Waiting != 0 {
			t.Errorf("Metrics after Close = %+v", m)
		}
		// Each worker times its first task, and every task while they take
		// longer than 50µs; only the failing task is quick.
		if m.Latency.Samples < 20 || m.Latency.Max < time.Millisecond || m.Latency.P50 > m.Latency.Max {
			t.Errorf("Latency = %+v, want at least 20 samples of at least 1ms", m.Latency)
		}
	})
}

// Resize keeps its promise under load: when shrinking, workers exit as
// they finish their current task, so no more tasks run at once than asked
// for as soon as the tasks running at the call have finished.
func TestResizeUnderLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 4, QueueSize: 2000})
		var running, peak atomic.Int64
		task := func(context.Context) error {
			n := running.Add(1)
			for old := peak.Load(); n > old && !peak.CompareAndSwap(old, n); old = peak.Load() {
			}
			time.Sleep(10 * time.Millisecond)
			running.Add(-1)
			return nil
		}
		for range 1500 {
			if err := p.Go(t.Context(), task); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range []int{2, 6, 1, 3, 8, 2, 5} {
			if err := p.Resize(n); err != nil {
				t.Fatal(err)
			}
			time.Sleep(15 * time.Millisecond) // every task running at the call has finished
			peak.Store(running.Load())
			time.Sleep(100 * time.Millisecond)
			if got := peak.Load(); got != int64(n) {
				t.Errorf("after Resize(%d): %d tasks ran at once", n, got)
			}
			if got := p.Metrics().Workers; got != n {
				t.Errorf("after Resize(%d): Metrics().Workers = %d", n, got)
			}
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if m := p.Metrics(); m.Succeeded != 1500 || m.Workers != 0 {
			t.Errorf("after Close: Metrics = %+v, want 1500 succeeded, no worker", m)
		}
	})
}
