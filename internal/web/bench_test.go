package web_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goherd/herd/internal/web"
	"github.com/goherd/herd/queue"
	"github.com/goherd/herd/queue/queuetest"
)

// BenchmarkPages measures each page of the dashboard over a queue of a
// million waiting jobs (HERD_BENCH_JOBS sets another number), of which a
// worker has run the first 10,000, from the request to the last byte of
// the answer, on loopback:
//
//	go test -run '^$' -bench Pages -benchtime 50x ./internal/web
func BenchmarkPages(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("HERD_BENCH_JOBS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	c := queuetest.New(b, queue.Config{SyncInterval: time.Second})
	start := time.Now()
	fill(b, c, n)
	b.Logf("enqueued %d jobs in %v", n, time.Since(start).Round(time.Millisecond))
	work(b, c, min(10_000, n/10)) // a queue that has run some jobs: finished ones removed, records kept
	deadJob(b, c, "dead-1")
	s, err := web.Listen(web.Config{Addr: "127.0.0.1:0", Queue: c})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	for _, page := range []string{"/", "/api/", "/jobs", "/jobs?state=dead", "/jobs?kind=nothing-matches", "/jobs/job-" + strconv.Itoa(n/2), "/runs", "/workers"} {
		b.Run(page, func(b *testing.B) {
			for b.Loop() {
				resp, err := http.Get(s.URL() + page)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("GET %s = %d", page, resp.StatusCode)
				}
			}
		})
	}
}

// fill enqueues n jobs, 1,000 at a time from 4 goroutines.
func fill(b *testing.B, c *queue.Client, n int) {
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			batch := make([]queue.NewJob, 0, 1000)
			for i := w; i < n; i += 4 {
				batch = append(batch, queue.NewJob{Kind: "k", Payload: []byte(`{"n":1}`), Options: queue.Options{ID: fmt.Sprint("job-", i), Queue: "bulk"}})
				if len(batch) == cap(batch) || i+4 >= n {
					if _, err := c.EnqueueBatch(context.Background(), batch); err != nil {
						errs <- err
						return
					}
					batch = batch[:0]
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// work runs n of the queue's jobs, then stops its worker.
func work(b *testing.B, c *queue.Client, n int) {
	w, err := c.NewWorker(queue.WorkerConfig{Queues: []string{"bulk"}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var done atomic.Int64
	w.Handle("k", func(context.Context, *queue.Job) ([]byte, error) {
		if done.Add(1) == int64(n) {
			cancel()
		}
		return nil, nil
	})
	if err := w.Run(ctx); err != nil {
		b.Fatal(err)
	}
	cancel()
}
