package queue_test

import (
	"context"
	"fmt"
	"os"

	"github.com/goherd/herd/queue"
)

type greeting struct {
	Name string `json:"name"`
}

// A job enqueued, run by a worker and its result read back, on an embedded
// server with its data in a temporary folder.
func Example() {
	dir, _ := os.MkdirTemp("", "herd-queue-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	c, err := queue.Open(ctx, queue.Config{Dir: dir})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	id, _ := queue.Enqueue(ctx, c, "greet", greeting{Name: "sheep"}, queue.Options{})

	w, _ := c.NewWorker(queue.WorkerConfig{Concurrency: 2})
	w.Handle("greet", func(ctx context.Context, j *queue.Job) ([]byte, error) {
		g, err := queue.Decode[greeting](j)
		if err != nil {
			return nil, queue.Permanent(err)
		}
		return []byte("hello, " + g.Name), nil
	})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- w.Run(runCtx) }()

	info, _ := c.Wait(ctx, id)
	stop()
	<-done
	fmt.Println(info.State, info.Attempts, string(info.Result))
	// Output: succeeded 1 hello, sheep
}

// A queue server for other processes, as herd queue serve runs it, and a
// client connecting to it by URL.
func ExampleServe() {
	dir, _ := os.MkdirTemp("", "herd-queue-example")
	defer os.RemoveAll(dir)
	srv, err := queue.Serve(queue.ServerConfig{Listen: "127.0.0.1:0", Dir: dir})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	ctx := context.Background()
	c, err := queue.Open(ctx, queue.Config{URL: srv.URL()})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	id, _ := c.Enqueue(ctx, "greet", []byte(`{"name":"fish"}`), queue.Options{ID: "greet.fish"})
	info, _ := c.Info(ctx, id)
	fmt.Println(info.ID, info.State)
	// Output: greet.fish queued
}

// A graph of jobs: two that fetch, one that waits for both and reads
// their results (fan-in), and one after it (a chain).
func ExampleClient_EnqueueGraph() {
	dir, _ := os.MkdirTemp("", "herd-queue-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	c, err := queue.Open(ctx, queue.Config{Dir: dir})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	var g queue.Graph
	g.Add("sheep", queue.NewJob{Kind: "fetch", Payload: []byte("sheep")})
	g.Add("goats", queue.NewJob{Kind: "fetch", Payload: []byte("goats")})
	g.Add("count", queue.NewJob{Kind: "count"}, "sheep", "goats")
	g.Add("report", queue.NewJob{Kind: "report"}, "count")
	ids, err := c.EnqueueGraph(ctx, &g)
	if err != nil {
		panic(err)
	}

	w, _ := c.NewWorker(queue.WorkerConfig{Concurrency: 4})
	w.Handle("fetch", func(ctx context.Context, j *queue.Job) ([]byte, error) {
		return fmt.Append(nil, len(j.Payload)), nil // five of each
	})
	w.Handle("count", func(ctx context.Context, j *queue.Job) ([]byte, error) {
		parents, err := c.Infos(ctx, j.Parents)
		if err != nil {
			return nil, err
		}
		total := 0
		for _, p := range parents {
			var n int
			fmt.Sscan(string(p.Result), &n)
			total += n
		}
		return fmt.Append(nil, total), nil
	})
	w.Handle("report", func(ctx context.Context, j *queue.Job) ([]byte, error) {
		count, err := c.Info(ctx, j.Parents[0])
		if err != nil {
			return nil, err
		}
		return []byte(string(count.Result) + " animals"), nil
	})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- w.Run(runCtx) }()

	info, _ := c.Wait(ctx, ids["report"])
	stop()
	<-done
	fmt.Println(info.State, string(info.Result))
	// Output: succeeded 10 animals
}
