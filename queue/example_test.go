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
