// Package queuetest runs a real queue for tests, as net/http/httptest runs
// a real server: an embedded NATS server with its data in the test's
// temporary folder, closed when the test ends.
package queuetest

import (
	"context"
	"testing"

	"github.com/goherd/herd/queue"
)

// New opens a queue on a fresh embedded server for the test t. cfg, if
// given, sets anything but the URL and the data folder.
func New(t testing.TB, cfg ...queue.Config) *queue.Client {
	t.Helper()
	var c queue.Config
	if len(cfg) > 0 {
		c = cfg[0]
	}
	c.URL = ""
	c.Dir = t.TempDir()
	client, err := queue.Open(t.Context(), c)
	if err != nil {
		t.Fatalf("queuetest: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// Work runs a worker of c with the given handlers, by kind, until the test
// ends, and checks then that it stopped cleanly.
func Work(t testing.TB, c *queue.Client, cfg queue.WorkerConfig, handlers map[string]queue.Handler) {
	t.Helper()
	w, err := c.NewWorker(cfg)
	if err != nil {
		t.Fatalf("queuetest: %v", err)
	}
	for kind, h := range handlers {
		w.Handle(kind, h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("queuetest: worker: %v", err)
		}
	})
}
