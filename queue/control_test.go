package queue_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goherd/herd/queue"
)

func paused(t *testing.T, c *queue.Client, name string) bool {
	t.Helper()
	st, err := c.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	seen, all := false, true
	for _, q := range st.Queues {
		if q.Queue == name {
			seen = true
			all = all && q.Paused
		}
	}
	return seen && all
}

// A paused queue takes enqueues but its workers start none of its jobs,
// across a restart of the server, until it is resumed. Other queues run.
func TestPauseSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c1, err := queue.Open(t.Context(), queue.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.Pause(t.Context(), "q"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 5 {
		id, err := c1.Enqueue(t.Context(), "job", nil, queue.Options{Queue: "q"})
		if err != nil {
			t.Fatalf("enqueue on a paused queue: %v", err)
		}
		ids = append(ids, id)
	}
	other, err := c1.Enqueue(t.Context(), "job", nil, queue.Options{Queue: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if !paused(t, c1, "q") || paused(t, c1, "other") {
		t.Fatal("Stats does not show q, and only q, paused")
	}
	var ran atomic.Int64
	handlers := map[string]queue.Handler{"job": func(context.Context, *queue.Job) ([]byte, error) {
		ran.Add(1)
		return nil, nil
	}}
	w, err := c1.NewWorker(queue.WorkerConfig{Queues: []string{"q", "other"}, Lease: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w.Handle("job", handlers["job"])
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	if info := wait(t, c1, other); info.State != queue.Succeeded {
		t.Fatalf("a job of a queue not paused: %+v", info)
	}
	time.Sleep(time.Second)
	if n := ran.Load(); n != 1 {
		t.Fatalf("%d jobs ran; want only the one of the queue not paused", n)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c1.Close()

	c2 := open(t, queue.Config{Dir: dir}) // the server restarts on the same folder
	if !paused(t, c2, "q") {
		t.Fatal("the pause did not survive the restart")
	}
	runWorker(t, c2, queue.WorkerConfig{Queues: []string{"q"}, Lease: 10 * time.Second}, handlers)
	time.Sleep(time.Second)
	if n := ran.Load(); n != 1 {
		t.Fatalf("%d jobs ran while the queue was paused", n)
	}
	for _, id := range ids {
		if info, err := c2.Info(t.Context(), id); err != nil || info.State != queue.Queued {
			t.Fatalf("job %s while paused: %+v, %v", id, info, err)
		}
	}
	if err := c2.Resume(t.Context(), "q"); err != nil {
		t.Fatal(err)
	}
	if paused(t, c2, "q") {
		t.Error("Stats shows q paused after Resume")
	}
	for _, id := range ids {
		if info := wait(t, c2, id); info.State != queue.Succeeded {
			t.Errorf("job %s after Resume: %+v", id, info)
		}
	}
}

func TestPauseBadQueue(t *testing.T) {
	c := open(t, queue.Config{Dir: t.TempDir()})
	for _, name := range []string{"", "a.b", "sp ace"} {
		if err := c.Pause(t.Context(), name); err == nil {
			t.Errorf("Pause(%q) = nil, want an error", name)
		}
		if err := c.Resume(t.Context(), name); err == nil {
			t.Errorf("Resume(%q) = nil, want an error", name)
		}
	}
	if err := c.Resume(t.Context(), "never-used"); err != nil {
		t.Errorf("Resume of a queue never paused = %v, want nil", err)
	}
}
