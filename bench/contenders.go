// Package bench measures herd side by side with the pools Go developers use
// today: ants, pond, conc and errgroup, plus the two things every pool is
// measured against, a hand-written channel pool and a goroutine per task.
// It is its own module so that none of them enters herd's go.mod.
//
// run.sh interleaves the contenders and repeats them; BENCHMARKS.md at the
// repository root has the figures and the command.
package bench

import (
	"context"
	"sync"

	"github.com/alitto/pond/v2"
	"github.com/goherd/herd"
	"github.com/panjf2000/ants/v2"
	"github.com/sourcegraph/conc/iter"
	"github.com/sourcegraph/conc/pool"
	"golang.org/x/sync/errgroup"
)

// A pool runs n calls of task on the given number of workers and returns
// when all have finished. Setting up and tearing down the pool is part of
// the run, as it is for a program that uses one.
type poolRunner struct {
	name string
	run  func(workers, n int, task func())
}

var pools = []poolRunner{
	{"chan", func(workers, n int, task func()) { chanPool(workers, workers, n, task) }},
	{"chan-buf64", func(workers, n int, task func()) { chanPool(workers, max(workers, 64), n, task) }},
	{"herd", func(workers, n int, task func()) {
		p, err := herd.New(herd.Config{Workers: workers})
		if err != nil {
			panic(err)
		}
		f := func(context.Context) error { task(); return nil }
		ctx := context.Background()
		for range n {
			p.Go(ctx, f)
		}
		p.Close()
	}},
	{"pond", func(workers, n int, task func()) {
		p := pond.NewPool(workers)
		for range n {
			p.Go(task)
		}
		p.StopAndWait()
	}},
	{"conc", func(workers, n int, task func()) {
		p := pool.New().WithMaxGoroutines(workers)
		for range n {
			p.Go(task)
		}
		p.Wait()
	}},
	{"errgroup", func(workers, n int, task func()) {
		var g errgroup.Group
		g.SetLimit(workers)
		f := func() error { task(); return nil }
		for range n {
			g.Go(f)
		}
		g.Wait()
	}},
	{"ants", func(workers, n int, task func()) {
		p, err := ants.NewPool(workers)
		if err != nil {
			panic(err)
		}
		var wg sync.WaitGroup
		wg.Add(n)
		f := func() { task(); wg.Done() }
		for range n {
			p.Submit(f)
		}
		wg.Wait()
		p.Release()
	}},
	{"goroutines", func(_, n int, task func()) {
		var wg sync.WaitGroup
		for range n {
			wg.Go(task)
		}
		wg.Wait()
	}},
}

// chanPool is the worker pool as Go tutorials write it: a jobs channel with
// a buffer, workers ranging over it, and a WaitGroup.
func chanPool(workers, buffer, n int, task func()) {
	jobs := make(chan func(), buffer)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for f := range jobs {
				f()
			}
		})
	}
	for range n {
		jobs <- task
	}
	close(jobs)
	wg.Wait()
}

// A mapper returns fn applied to every element of in, in order, computed on
// the given number of workers.
type mapRunner struct {
	name string
	run  func(workers int, in []int, fn func(int) int) []int
}

var mappers = []mapRunner{
	{"chan-indexed", func(workers int, in []int, fn func(int) int) []int {
		out := make([]int, len(in))
		jobs := make(chan int, workers)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := range jobs {
					out[i] = fn(in[i])
				}
			})
		}
		for i := range in {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		return out
	}},
	{"herd-Map", func(workers int, in []int, fn func(int) int) []int {
		out := make([]int, 0, len(in))
		seq := func(yield func(int) bool) {
			for _, v := range in {
				if !yield(v) {
					return
				}
			}
		}
		for r, err := range herd.Map(context.Background(), workers, seq, func(_ context.Context, v int) (int, error) { return fn(v), nil }) {
			if err != nil {
				panic(err)
			}
			out = append(out, r)
		}
		return out
	}},
	{"herd-MapSlice", func(workers int, in []int, fn func(int) int) []int {
		out, err := herd.MapSlice(context.Background(), workers, in, func(_ context.Context, v int) (int, error) { return fn(v), nil })
		if err != nil {
			panic(err)
		}
		return out
	}},
	{"pond-group", func(workers int, in []int, fn func(int) int) []int {
		p := pond.NewResultPool[int](workers)
		g := p.NewGroup()
		for _, v := range in {
			g.Submit(func() int { return fn(v) })
		}
		out, err := g.Wait()
		if err != nil {
			panic(err)
		}
		p.StopAndWait()
		return out
	}},
	{"conc-iter", func(workers int, in []int, fn func(int) int) []int {
		m := iter.Mapper[int, int]{MaxGoroutines: workers}
		return m.Map(in, func(v *int) int { return fn(*v) })
	}},
	{"errgroup-indexed", func(workers int, in []int, fn func(int) int) []int {
		out := make([]int, len(in))
		var g errgroup.Group
		g.SetLimit(workers)
		for i, v := range in {
			g.Go(func() error { out[i] = fn(v); return nil })
		}
		g.Wait()
		return out
	}},
}
