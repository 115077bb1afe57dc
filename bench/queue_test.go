package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goherd/herd/queue"
	"github.com/hibiken/asynq"
)

const queueJobs = 100_000

// BenchmarkQueue enqueues 100,000 no-op jobs, then processes and acks them
// with 8 jobs at once, and reports the rates. An iteration is one whole run.
func BenchmarkQueue(b *testing.B) {
	for _, sync := range []struct {
		name     string
		interval time.Duration
	}{{"herd-fsync-always", 0}, {"herd-fsync-2m", 2 * time.Minute}} {
		b.Run("impl="+sync.name, func(b *testing.B) {
			benchQueue(b, func(b *testing.B) (enqueue func(context.Context, int) error, process func(context.Context, int) error) {
				c, err := queue.Open(b.Context(), queue.Config{Dir: b.TempDir(), SyncInterval: sync.interval})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { c.Close() })
				enqueue = func(ctx context.Context, n int) error {
					batch := make([]queue.NewJob, 1000)
					for i := range batch {
						batch[i] = queue.NewJob{Kind: "noop"}
					}
					for done := 0; done < n; done += len(batch) {
						if _, err := c.EnqueueBatch(ctx, batch); err != nil {
							return err
						}
					}
					return nil
				}
				process = func(ctx context.Context, n int) error {
					var left atomic.Int64
					left.Store(int64(n))
					ctx, cancel := context.WithCancel(ctx)
					w, _ := c.NewWorker(queue.WorkerConfig{Concurrency: 8})
					w.Handle("noop", func(context.Context, *queue.Job) ([]byte, error) {
						if left.Add(-1) == 0 {
							cancel()
						}
						return nil, nil
					})
					return w.Run(ctx)
				}
				return enqueue, process
			})
		})
	}
	b.Run("impl=asynq-redis", func(b *testing.B) {
		benchQueue(b, func(b *testing.B) (func(context.Context, int) error, func(context.Context, int) error) {
			addr := startRedis(b)
			client := asynq.NewClient(asynq.RedisClientOpt{Addr: addr})
			b.Cleanup(func() { client.Close() })
			enqueue := func(ctx context.Context, n int) error {
				for range n {
					if _, err := client.EnqueueContext(ctx, asynq.NewTask("noop", nil)); err != nil {
						return err
					}
				}
				return nil
			}
			process := func(ctx context.Context, n int) error {
				var left atomic.Int64
				left.Store(int64(n))
				done := make(chan struct{})
				srv := asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, asynq.Config{Concurrency: 8, LogLevel: asynq.FatalLevel})
				mux := asynq.NewServeMux()
				mux.HandleFunc("noop", func(context.Context, *asynq.Task) error {
					if left.Add(-1) == 0 {
						close(done)
					}
					return nil
				})
				if err := srv.Start(mux); err != nil {
					return err
				}
				<-done
				srv.Shutdown()
				return nil
			}
			return enqueue, process
		})
	})
}

// benchQueue times setup's enqueue and process phases on a fresh queue
// for each iteration.
func benchQueue(b *testing.B, setup func(*testing.B) (func(context.Context, int) error, func(context.Context, int) error)) {
	var enqueueTime, processTime time.Duration
	for b.Loop() {
		b.StopTimer()
		enqueue, process := setup(b)
		b.StartTimer()
		start := time.Now()
		if err := enqueue(b.Context(), queueJobs); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := process(b.Context(), queueJobs); err != nil {
			b.Fatal(err)
		}
		enqueueTime += mid.Sub(start)
		processTime += time.Since(mid)
	}
	jobs := float64(b.N) * queueJobs
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(jobs/enqueueTime.Seconds(), "enqueued/s")
	b.ReportMetric(jobs/processTime.Seconds(), "processed/s")
	b.ReportMetric(jobs/(enqueueTime+processTime).Seconds(), "jobs/s")
}

// startRedis starts a redis-server on a free loopback port, with Redis's
// default durability (snapshots, no append-only file), for this benchmark.
func startRedis(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := b.TempDir()
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--dir", dir, "--save", "3600 1 300 100 60 10000")
	cmd.Stdout, cmd.Stderr = nil, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("redis-server is needed (bench/run.sh installs it): %v", err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			b.Fatal("redis-server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
