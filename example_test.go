package herd_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/goherd/herd"
)

// The worker pool of the tour (examples/seed/7-worker-pool) rewritten with
// herd: no channels to make, size or close, and the results come back in
// input order, with errors and panics reported rather than lost.
func Example_workerPool() {
	fib := func(_ context.Context, n int) (int, error) {
		a, b := 0, 1
		for range n {
			a, b = b, a+b
		}
		return a, nil
	}
	for f, err := range herd.Map(context.Background(), 4, slices.Values([]int{10, 20, 30, 40}), fib) {
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(f)
	}
	// Output:
	// 55
	// 6765
	// 832040
	// 102334155
}

func ExampleNew() {
	p, err := herd.New(herd.Config{Workers: 2, QueueSize: 10})
	if err != nil {
		panic(err)
	}
	results := make(chan string, 3)
	for _, name := range []string{"a", "b", "c"} {
		p.Go(context.Background(), func(ctx context.Context) error {
			results <- "hello " + name
			return nil
		})
	}
	p.Close() // runs what is queued, then waits for the workers
	close(results)
	var got []string
	for r := range results {
		got = append(got, r)
	}
	slices.Sort(got)
	fmt.Println(got)
	// Output: [hello a hello b hello c]
}

func ExamplePool_TryGo() {
	p, _ := herd.New(herd.Config{Workers: 1, QueueSize: 1})
	release := make(chan struct{})
	started := make(chan struct{})
	p.TryGo(func(context.Context) error { close(started); <-release; return nil })
	<-started
	fmt.Println(p.TryGo(func(context.Context) error { return nil })) // fills the queue
	fmt.Println(p.TryGo(func(context.Context) error { return nil })) // no room
	close(release)
	p.Close()
	// Output:
	// true
	// false
}

func ExamplePool_Shutdown() {
	p, _ := herd.New(herd.Config{Workers: 1, QueueSize: 10})
	for range 5 {
		p.Go(context.Background(), func(ctx context.Context) error {
			select {
			case <-time.After(time.Hour):
			case <-ctx.Done(): // Shutdown gave up: stop early
			}
			return ctx.Err()
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	fmt.Println(p.Shutdown(ctx))
	// Output: herd: shutdown: 4 queued tasks never ran: context deadline exceeded
}

func ExamplePool_Resize() {
	p, _ := herd.New(herd.Config{Workers: 2})
	defer p.Close()
	p.Resize(8)
	fmt.Println(p.Metrics().Workers)
	// Output: 8
}

func ExamplePool_Metrics() {
	p, _ := herd.New(herd.Config{Workers: 2, OnError: func(error) {}})
	for i := range 10 {
		p.Go(context.Background(), func(context.Context) error {
			if i == 3 {
				return errors.New("three")
			}
			return nil
		})
	}
	p.Close()
	m := p.Metrics()
	fmt.Println(m.Submitted, m.Succeeded, m.Failed, m.Running)
	// Output: 10 9 1 0
}

func ExampleNewGroup() {
	g := herd.NewGroup(context.Background(), nil) // nil: a pool of its own
	for _, n := range []int{1, 2, 3, 4} {
		g.Go(func(ctx context.Context) error {
			if n%2 == 0 {
				return fmt.Errorf("%d is even", n)
			}
			return nil
		})
	}
	err := g.Wait()
	fmt.Println(len(err.(interface{ Unwrap() []error }).Unwrap()), "errors")
	// Output: 2 errors
}

func ExampleNewFailFastGroup() {
	p, _ := herd.New(herd.Config{Workers: 4})
	defer p.Close()
	g := herd.NewFailFastGroup(context.Background(), p)
	g.Go(func(ctx context.Context) error {
		<-ctx.Done() // cancelled by the other task's failure
		fmt.Println("cancelled because:", context.Cause(ctx))
		return ctx.Err()
	})
	g.Go(func(ctx context.Context) error {
		return errors.New("disk full")
	})
	fmt.Println("Wait:", g.Wait())
	// Output:
	// cancelled because: disk full
	// Wait: disk full
}

func ExampleGroup_Wait_panic() {
	g := herd.NewGroup(context.Background(), nil)
	g.Go(func(ctx context.Context) error {
		panic("unexpected state")
	})
	err := g.Wait()
	if pe, ok := errors.AsType[*herd.PanicError](err); ok {
		fmt.Println("panic:", pe.Value)
	}
	// Output: panic: unexpected state
}

func ExampleMap() {
	words := slices.Values([]string{"queue", "of", "things", "to", "be", "done"})
	length := func(_ context.Context, w string) (string, error) {
		return fmt.Sprintf("%s=%d", w, len(w)), nil
	}
	for s, err := range herd.Map(context.Background(), 3, words, length) {
		if err != nil {
			panic(err)
		}
		fmt.Print(s, " ")
	}
	fmt.Println()
	// Output: queue=5 of=2 things=6 to=2 be=2 done=4
}

func ExampleMapUnordered() {
	delays := slices.Values([]int{300, 100, 200})
	sleep := func(ctx context.Context, ms int) (string, error) {
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return fmt.Sprint(ms, "ms"), nil
	}
	for s := range herd.MapUnordered(context.Background(), 3, delays, sleep) {
		fmt.Println(s)
	}
	// Output:
	// 100ms
	// 200ms
	// 300ms
}

func ExampleMapSlice() {
	squares, err := herd.MapSlice(context.Background(), 2, []int{1, 2, 3}, func(_ context.Context, x int) (int, error) {
		return x * x, nil
	})
	fmt.Println(squares, err)
	// Output: [1 4 9] <nil>
}

func ExampleConfig() {
	attempts := 0
	p, _ := herd.New(herd.Config{
		Workers:     1,
		TaskTimeout: time.Second,      // each attempt's context ends after a second
		Retries:     2,                // a failing task runs up to 3 times
		Backoff:     time.Millisecond, // waiting 1ms, then 2ms, between attempts
		Rate:        1000,             // at most 1000 attempts start per second
		OnError:     func(err error) { fmt.Println("gave up:", err) },
	})
	p.Go(context.Background(), func(ctx context.Context) error {
		attempts++
		return fmt.Errorf("attempt %d failed", attempts)
	})
	p.Close()
	fmt.Println(attempts, "attempts")
	// Output:
	// gave up: attempt 3 failed
	// 3 attempts
}

func ExampleNewResultGroup() {
	g := herd.NewResultGroup[string](context.Background(), nil)
	for _, name := range []string{"ada", "grace", "barbara"} {
		g.Go(func(ctx context.Context) (string, error) {
			return strings.ToUpper(name), nil
		})
	}
	names, err := g.Wait() // in the order the tasks were submitted
	fmt.Println(names, err)
	// Output: [ADA GRACE BARBARA] <nil>
}

func ExampleGroup_SetLimit() {
	p, _ := herd.New(herd.Config{Workers: 8})
	defer p.Close()
	g := herd.NewGroup(context.Background(), p)
	g.SetLimit(2) // this group uses at most 2 of the pool's 8 workers
	var running, peak atomic.Int64
	for range 10 {
		g.Go(func(ctx context.Context) error {
			n := running.Add(1)
			defer running.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(time.Millisecond)
			return nil
		})
	}
	fmt.Println(g.Wait(), peak.Load() <= 2)
	// Output: <nil> true
}

// A task adding to a group made outside the pool passes its own context, so
// that on a full queue it runs queued tasks instead of waiting for itself.
func ExampleGroup_GoContext() {
	p, _ := herd.New(herd.Config{Workers: 1, QueueSize: 1})
	defer p.Close()
	g := herd.NewGroup(context.Background(), p)
	var visited atomic.Int64
	var crawl func(depth int) func(context.Context) error
	crawl = func(depth int) func(context.Context) error {
		return func(ctx context.Context) error {
			visited.Add(1)
			for range depth {
				g.GoContext(ctx, crawl(depth-1))
			}
			return nil
		}
	}
	g.Go(crawl(4))
	fmt.Println(g.Wait(), visited.Load())
	// Output: <nil> 65
}
