package herd_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/goherd/herd"
)

func square(_ context.Context, x int) (int, error) { return x * x, nil }

func count(n int) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := range n {
			if !yield(i) {
				return
			}
		}
	}
}

// naturals never ends by itself, and records how far it was read.
func naturals(read *atomic.Int64) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := 0; ; i++ {
			read.Store(int64(i + 1))
			if !yield(i) {
				return
			}
		}
	}
}

func TestMapOrdered(t *testing.T) {
	for _, workers := range []int{0, 1, 2, 7, 100} {
		for _, n := range []int{0, 1, 5, 1000} {
			var got []int
			for r, err := range herd.Map(t.Context(), workers, count(n), square) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, r)
			}
			if len(got) != n {
				t.Fatalf("workers=%d n=%d: %d results", workers, n, len(got))
			}
			for i, r := range got {
				if r != i*i {
					t.Fatalf("workers=%d n=%d: result %d = %d, want %d", workers, n, i, r, i*i)
				}
			}
		}
	}
}

func TestMapUnordered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Later inputs finish first: completion order is the reverse.
		var got []int
		slow := func(_ context.Context, x int) (int, error) {
			time.Sleep(time.Duration(10-x) * time.Second)
			return x, nil
		}
		for r, err := range herd.MapUnordered(t.Context(), 10, count(10), slow) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, r)
		}
		if want := []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}; !slices.Equal(got, want) {
			t.Errorf("completion order = %v, want %v", got, want)
		}
	})
}

// MapUnordered yields each result as soon as it is ready: a slow call
// holds back no result but its own, even when it was handed to a worker
// in the same batch as quick ones. Here the slow call ends only once the
// consumer has seen every other result (or after a long backstop).
func TestMapUnorderedHoldsNothingBack(t *testing.T) {
	const n = 1000
	for round := range 5 {
		seen := make(chan struct{})
		fn := func(ctx context.Context, x int) (int, error) {
			if x == n-1 {
				select {
				case <-seen:
				case <-time.After(10 * time.Second):
					return x, errors.New("the slow call waited 10s for the consumer to see the other results: they were held back")
				}
			}
			return x, nil
		}
		got := 0
		for r, err := range herd.MapUnordered(t.Context(), 2, count(n), fn) {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if r == n-1 {
				if got != n-1 {
					t.Fatalf("round %d: the slow result came after %d results, want %d", round, got, n-1)
				}
				continue
			}
			if got++; got == n-1 {
				close(seen)
			}
		}
	}
}

func TestMapStreamsEachResultWhenReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		delay := []time.Duration{3, 1, 2, 5, 4}
		var at []time.Duration
		for range herd.Map(t.Context(), 5, count(5), func(_ context.Context, i int) (int, error) {
			time.Sleep(delay[i] * time.Second)
			return i, nil
		}) {
			at = append(at, time.Since(start))
		}
		// In input order, each as soon as it and those before it are done.
		want := []time.Duration{3 * time.Second, 3 * time.Second, 3 * time.Second, 5 * time.Second, 5 * time.Second}
		if !slices.Equal(at, want) {
			t.Errorf("results yielded at %v, want %v", at, want)
		}
	})
}

func TestMapErrorsAndPanicsAreYielded(t *testing.T) {
	errOdd := errors.New("odd")
	fn := func(_ context.Context, x int) (int, error) {
		switch {
		case x == 4:
			panicky()
		case x%2 == 1:
			return 0, errOdd
		}
		return x, nil
	}
	var errs []error
	for i, err := range enumerate(herd.Map(t.Context(), 3, count(6), fn)) {
		errs = append(errs, err)
		if (i%2 == 1) != errors.Is(err, errOdd) {
			t.Errorf("result %d: err = %v", i, err)
		}
	}
	if pe, ok := errors.AsType[*herd.PanicError](errs[4]); !ok || !strings.Contains(string(pe.Stack), "panicky") {
		t.Errorf("result 4: err = %v, want a *PanicError from panicky", errs[4])
	}
}

// enumerate yields the index of each result with its error.
func enumerate[R any](seq iter.Seq2[R, error]) iter.Seq2[int, error] {
	return func(yield func(int, error) bool) {
		i := 0
		for _, err := range seq {
			if !yield(i, err) {
				return
			}
			i++
		}
	}
}

func TestMapBreakStopsWorkAndLeaksNothing(t *testing.T) {
	for _, ordered := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			mapFn := herd.Map[int, int]
			if !ordered {
				mapFn = herd.MapUnordered[int, int]
			}
			var read, cancelled atomic.Int64
			slowUnlessFirst := func(ctx context.Context, x int) (int, error) {
				if x < 10 {
					return x, nil
				}
				select {
				case <-time.After(time.Hour):
				case <-ctx.Done():
					cancelled.Add(1)
				}
				return x, nil
			}
			n := 0
			start := time.Now()
			for range mapFn(t.Context(), 4, naturals(&read), slowUnlessFirst) {
				if n++; n == 5 {
					synctest.Wait() // every worker is now in an hour-long call
					break
				}
			}
			// synctest.Test fails if any goroutine is left behind.
			if d := time.Since(start); d != 0 {
				t.Errorf("ordered=%v: break returned after %v, want at once", ordered, d)
			}
			if cancelled.Load() != 4 {
				t.Errorf("ordered=%v: %d running calls saw their context cancelled, want 4", ordered, cancelled.Load())
			}
			if read.Load() > 5+16*4+4+1 {
				t.Errorf("ordered=%v: read %d inputs for 5 results, want a bounded window", ordered, read.Load())
			}
		})
	}
}

// In real time a quick fn makes Map batch values, up to 128 a batch and 4
// batches a worker; under synctest no time passes and batches stay at one.
func TestMapBoundedWindowOnEndlessInput(t *testing.T) {
	check := func(t *testing.T, window int64) {
		var read atomic.Int64
		consumed := 0
		for x, err := range herd.Map(t.Context(), 4, naturals(&read), square) {
			if err != nil || x != consumed*consumed {
				t.Fatalf("result %d = %d, %v", consumed, x, err)
			}
			consumed++
			if ahead := read.Load() - int64(consumed); ahead > window+1 {
				t.Fatalf("after %d results, %d inputs read ahead; want at most %d", consumed, ahead, window+1)
			}
			if consumed == 100_000 {
				break
			}
		}
	}
	t.Run("batches", func(t *testing.T) { check(t, 4*4*128) })
	t.Run("synctest", func(t *testing.T) { synctest.Test(t, func(t *testing.T) { check(t, 4*4) }) })
}

func TestMapContextCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var read atomic.Int64
		n := 0
		var last error
		for _, err := range herd.Map(ctx, 2, naturals(&read), square) {
			if n++; n == 100 {
				cancel()
			}
			last = err
		}
		if n != 101 || !errors.Is(last, context.Canceled) {
			t.Errorf("%d results, the last with error %v; want 100, then context.Canceled once", n, last)
		}
	})
}

func TestMapSlice(t *testing.T) {
	in := []int{1, 2, 3, 4, 5}
	got, err := herd.MapSlice(t.Context(), 2, in, square)
	if err != nil || !slices.Equal(got, []int{1, 4, 9, 16, 25}) {
		t.Errorf("MapSlice = %v, %v", got, err)
	}
	errThree := errors.New("three")
	got, err = herd.MapSlice(t.Context(), 2, in, func(_ context.Context, x int) (int, error) {
		if x == 3 {
			return 0, fmt.Errorf("%d: %w", x, errThree)
		}
		return x, nil
	})
	if got != nil || err == nil || err.Error() != "3: three" {
		t.Errorf("MapSlice with a failure = %v, %v; want nil and the error", got, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if got, err := herd.MapSlice(ctx, 2, in, square); got != nil || !errors.Is(err, context.Canceled) {
		t.Errorf("MapSlice(cancelled) = %v, %v; want context.Canceled", got, err)
	}
}

func TestMapGoexit(t *testing.T) {
	var errs int
	for _, err := range herd.Map(t.Context(), 1, count(5), func(_ context.Context, x int) (int, error) {
		if x == 2 {
			runtime.Goexit()
		}
		return x, nil
	}) {
		if err != nil {
			errs++
		}
	}
	if errs != 1 {
		t.Errorf("%d errors, want 1 for the Goexit", errs)
	}
}

// FuzzMapEqualsSequential checks that Map yields what a plain loop would,
// for any inputs, worker count and task delays.
func FuzzMapEqualsSequential(f *testing.F) {
	f.Add(uint64(1), uint8(3), uint16(100))
	f.Add(uint64(7), uint8(1), uint16(0))
	f.Add(uint64(42), uint8(64), uint16(1000))
	f.Fuzz(func(t *testing.T, seed uint64, workers uint8, n uint16) {
		rng := rand.New(rand.NewPCG(seed, seed))
		in := make([]int, n%2000)
		delays := make([]time.Duration, len(in))
		for i := range in {
			in[i] = rng.IntN(1000) - 500
			delays[i] = time.Duration(rng.IntN(5)) * time.Millisecond
		}
		fn := func(_ context.Context, i int) (string, error) {
			time.Sleep(delays[i])
			if in[i]%7 == 0 {
				return "", fmt.Errorf("multiple of 7: %d", in[i])
			}
			return fmt.Sprint(in[i] * 3), nil
		}
		synctest.Test(t, func(t *testing.T) {
			i := 0
			for got, err := range herd.Map(t.Context(), int(workers%70), count(len(in)), fn) {
				want, wantErr := fn(t.Context(), i)
				if got != want || fmt.Sprint(err) != fmt.Sprint(wantErr) {
					t.Fatalf("result %d = %q, %v; want %q, %v", i, got, err, want, wantErr)
				}
				i++
			}
			if i != len(in) {
				t.Fatalf("%d results, want %d", i, len(in))
			}
		})
	})
}

// within fails the test if f has not returned after a generous while: what
// it guards against is a hang, not slowness.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s hung", what)
	}
}

// An input whose next value waits for the consumer to see the result of
// the one before: every result must reach the consumer without waiting for
// more input, whatever the number of workers and whether a worker is
// between batches.
func TestMapInputWaitsForConsumer(t *testing.T) {
	for _, workers := range []int{1, 2, 4} {
		lockstep := func(t *testing.T) {
			seen := make(chan int)
			in := func(yield func(int) bool) {
				for i := range 200 {
					if !yield(i) {
						return
					}
					if <-seen != i {
						return
					}
				}
			}
			n := 0
			for x, err := range herd.Map(t.Context(), workers, in, square) {
				if err != nil || x != n*n {
					t.Fatalf("result %d = %d, %v", n, x, err)
				}
				seen <- n
				n++
			}
			if n != 200 {
				t.Errorf("workers: %d: %d results, want 200", workers, n)
			}
		}
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			synctest.Test(t, lockstep) // a hang is a deadlock synctest reports
			for range 20 {
				within(t, "Map in lockstep", func() { lockstep(t) })
			}
		})
	}
}

// Slow values batched behind quick ones are shared out to idle workers: no
// value waits behind a busy worker while another is idle. The Y values can
// only finish once two of them run at once.
func TestMapSharesABatchWithIdleWorkers(t *testing.T) {
	for _, ordered := range []bool{true, false} {
		gate := make(chan struct{})
		barrier := make(chan struct{})
		var ys atomic.Int64
		in := func(yield func(string) bool) {
			for range 500 { // quick: Map learns to batch
				if !yield("quick") {
					return
				}
			}
			for _, v := range []string{"X", "X", "Y", "Y", "Y", "Y", "Y"} {
				if !yield(v) {
					return
				}
			}
			close(gate) // the Ys are batched while both workers hold an X
		}
		fn := func(_ context.Context, v string) (string, error) {
			switch v {
			case "X":
				<-gate
			case "Y":
				if ys.Add(1) == 2 {
					close(barrier)
				}
				<-barrier
			}
			return v, nil
		}
		mapFn := herd.Map[string, string]
		if !ordered {
			mapFn = herd.MapUnordered[string, string]
		}
		within(t, fmt.Sprint("ordered=", ordered), func() {
			n := 0
			for _, err := range mapFn(t.Context(), 2, in, fn) {
				if err != nil {
					t.Error(err)
				}
				n++
			}
			if n != 507 {
				t.Errorf("ordered=%v: %d results, want 507", ordered, n)
			}
		})
	}
}

func inputPanics() iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := range 10 {
			if !yield(i) {
				return
			}
		}
		panicky()
	}
}

// A panic in the input reaches the consumer, after the results of the
// values yielded before it, instead of killing the process.
func TestMapInputPanicIsYielded(t *testing.T) {
	for _, ordered := range []bool{true, false} {
		mapFn := herd.Map[int, int]
		if !ordered {
			mapFn = herd.MapUnordered[int, int]
		}
		var results int
		var last error
		for _, err := range mapFn(t.Context(), 3, inputPanics(), square) {
			if last != nil {
				t.Fatalf("ordered=%v: a result after the input's panic", ordered)
			}
			if err != nil {
				last = err
				continue
			}
			results++
		}
		pe, ok := errors.AsType[*herd.PanicError](last)
		if results != 10 || !ok || !strings.Contains(string(pe.Stack), "panicky") {
			t.Errorf("ordered=%v: %d results then %v; want 10, then a *PanicError from panicky", ordered, results, last)
		}
	}
}

func TestMapUnorderedContextCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var read atomic.Int64
		var errs []error
		for _, err := range herd.MapUnordered(ctx, 2, naturals(&read), square) {
			if err != nil {
				errs = append(errs, err)
				continue
			}
			cancel()
		}
		if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
			t.Errorf("errors %v, want context.Canceled once", errs)
		}
	})
}

// The context cancelled while the consumer waits for a slow value.
func TestMapCancelledWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() { time.Sleep(time.Second); cancel() }()
		var errs []error
		for _, err := range herd.Map(ctx, 2, count(3), func(ctx context.Context, x int) (int, error) {
			<-ctx.Done()
			return x, nil
		}) {
			errs = append(errs, err)
		}
		if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
			t.Errorf("yielded %v, want context.Canceled once", errs)
		}
	})
}
