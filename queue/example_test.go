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
