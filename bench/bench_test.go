package bench

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Every contender must do the work it is timed on.
func TestPoolsRunEveryTask(t *testing.T) {
	for _, p := range pools {
		for _, workers := range []int{1, 2, 50} {
			var n atomic.Int64
			p.run(workers, 5000, func() { n.Add(1) })
			if n.Load() != 5000 {
				t.Errorf("%s with %d workers ran %d tasks, want 5000", p.name, workers, n.Load())
			}
		}
	}
}

func TestMappersKeepOrder(t *testing.T) {
	in := make([]int, 5000)
	for i := range in {
		in[i] = i
	}
	want := make([]int, len(in))
	for i := range in {
		want[i] = 3 * i
	}
	for _, m := range mappers {
		if got := m.run(2, in, func(x int) int { return 3 * x }); !slices.Equal(got, want) {
			t.Errorf("%s: results out of order or wrong", m.name)
		}
	}
}

// listing is set when bench/run.sh only lists the benchmarks' cases: each
// case then returns at once instead of measuring.
var listing = os.Getenv("HERD_BENCH_LIST") != ""

// cpuTime is the user and system CPU time of the whole process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs round, which does tasks tasks, b.N times, and reports wall
// and CPU time, bytes and allocations per task.
func measure(b *testing.B, tasks int, round func()) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cpu := cpuTime()
	for b.Loop() {
		round()
	}
	cpu = cpuTime() - cpu
	runtime.ReadMemStats(&after)
	total := float64(b.N) * float64(tasks)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/task")
	b.ReportMetric(float64(cpu.Nanoseconds())/total, "cpu-ns/task")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/total, "B/task")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/task")
}

// (a) 1,000,000 tasks that do nothing: the pools' own overhead.
func BenchmarkNoop(b *testing.B) {
	const tasks = 1_000_000
	for _, workers := range []int{2, 1000} {
		for _, p := range pools {
			b.Run(fmt.Sprintf("workers=%d/impl=%s", workers, p.name), func(b *testing.B) {
				if listing {
					return // run.sh only lists the cases
				}
				measure(b, tasks, func() { p.run(workers, tasks, func() {}) })
			})
		}
	}
}

var spinIterations = sync.OnceValue(func() int {
	// Calibrate a loop to about 10µs of CPU on this machine.
	const probe = 1_000_000
	start := time.Now()
	spin(probe)
	return int(float64(probe) * float64(10*time.Microsecond) / float64(time.Since(start)))
})

var sink atomic.Uint64

func spin(n int) {
	x := uint64(n)
	for range n {
		x = x*6364136223846793005 + 1442695040888963407
	}
	sink.Add(x)
}

// (b) 100,000 tasks of about 10µs of CPU each, on GOMAXPROCS workers.
func BenchmarkCPU10us(b *testing.B) {
	const tasks = 100_000
	iters := spinIterations()
	workers := runtime.GOMAXPROCS(0)
	for _, p := range pools {
		b.Run(fmt.Sprintf("workers=%d/impl=%s", workers, p.name), func(b *testing.B) {
			if listing {
				return // run.sh only lists the cases
			}
			measure(b, tasks, func() { p.run(workers, tasks, func() { spin(iters) }) })
		})
	}
}

// (c) 100,000 tasks whose typed results are wanted in input order.
func BenchmarkOrdered(b *testing.B) {
	const tasks = 100_000
	in := make([]int, tasks)
	for i := range in {
		in[i] = i
	}
	workers := runtime.GOMAXPROCS(0)
	double := func(x int) int { return 2 * x }
	for _, m := range mappers {
		b.Run(fmt.Sprintf("workers=%d/impl=%s", workers, m.name), func(b *testing.B) {
			if listing {
				return // run.sh only lists the cases
			}
			measure(b, tasks, func() {
				if out := m.run(workers, in, double); len(out) != tasks {
					b.Fatalf("%d results", len(out))
				}
			})
		})
	}
}
