package queue_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goherd/herd/internal/testutil"
	"github.com/goherd/herd/queue"
	"github.com/goherd/herd/queue/internal/embedded"
	"github.com/goherd/herd/queue/queuetest"
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
	t.Parallel()
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
	var ranPaused atomic.Int64 // jobs of q run
	handlers := map[string]queue.Handler{"job": func(_ context.Context, j *queue.Job) ([]byte, error) {
		if j.Queue == "q" {
			ranPaused.Add(1)
		}
		return nil, nil
	}}
	// passOver waits until a worker serving q and other has run two jobs
	// of other enqueued one after the other: it has looked at its queues
	// since q's jobs were there, and could have taken them.
	passOver := func(c *queue.Client) {
		t.Helper()
		for range 2 {
			id, err := c.Enqueue(t.Context(), "job", nil, queue.Options{Queue: "other"})
			if err != nil {
				t.Fatal(err)
			}
			if info := wait(t, c, id); info.State != queue.Succeeded {
				t.Fatalf("a job of a queue not paused: %+v", info)
			}
		}
	}
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
	passOver(c1)
	if n := ranPaused.Load(); n != 0 {
		t.Fatalf("%d jobs of the paused queue ran", n)
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
	queuetest.Work(t, c2, queue.WorkerConfig{Queues: []string{"q", "other"}, Lease: 10 * time.Second}, handlers)
	passOver(c2)
	if n := ranPaused.Load(); n != 0 {
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
	t.Parallel()
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

// Cancel stops a job wherever it is: waiting, scheduled or running (from
// another client, with its own connection), and a cancelled job never runs
// again.
func TestCancel(t *testing.T) {
	t.Parallel()
	ns := startServer(t, embedded.Config{})
	c := open(t, queue.Config{URL: ns.ClientURL()})
	other := open(t, queue.Config{URL: ns.ClientURL()})

	queued, err := c.Enqueue(t.Context(), "job", nil, queue.Options{Queue: "q"})
	if err != nil {
		t.Fatal(err)
	}
	scheduled, err := c.Enqueue(t.Context(), "job", nil, queue.Options{Queue: "q", Delay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{queued, scheduled} {
		if err := other.Cancel(t.Context(), id); err != nil {
			t.Fatalf("Cancel(%s): %v", id, err)
		}
	}

	var ran atomic.Int64
	started := make(chan struct{})
	cause := make(chan error, 1)
	queuetest.Work(t, c, queue.WorkerConfig{Queues: []string{"q"}, Backoff: time.Millisecond}, map[string]queue.Handler{
		"job": func(context.Context, *queue.Job) ([]byte, error) { ran.Add(1); return nil, nil },
		"long": func(ctx context.Context, _ *queue.Job) ([]byte, error) {
			close(started)
			<-ctx.Done()
			cause <- context.Cause(ctx)
			return nil, ctx.Err()
		},
	})
	long, err := c.Enqueue(t.Context(), "long", nil, queue.Options{Queue: "q"})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	at := time.Now()
	if err := other.Cancel(t.Context(), long); err != nil {
		t.Fatalf("Cancel of a running job: %v", err)
	}
	select {
	case err := <-cause:
		t.Logf("the running job's context was cancelled after %v: %v", time.Since(at), err)
	case <-time.After(5 * time.Second):
		t.Fatal("the running job's context was not cancelled")
	}
	for _, id := range []string{queued, scheduled, long} {
		if info := wait(t, c, id); info.State != queue.Cancelled {
			t.Errorf("job %s: %+v, want cancelled", id, info)
		}
	}
	// Cancel's record comes first; the worker's, which counts the
	// attempt, follows once the handler has returned.
	testutil.EventuallyNil(t, "the cancelled running job's attempt to be counted", func() error {
		info, err := c.Info(t.Context(), long)
		if err == nil && info.State == queue.Cancelled && info.Attempts == 1 && len(info.Errors) == 0 {
			return nil
		}
		return fmt.Errorf("the cancelled running job: %+v, %v; want cancelled, 1 attempt and no error", info, err)
	})

	// A job queued after the cancelled ones runs: the worker has looked at
	// the queue since they were there, and ran none of them.
	done, err := c.Enqueue(t.Context(), "job", nil, queue.Options{Queue: "q"})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, c, done)
	if n := ran.Load() - 1; n != 0 {
		t.Errorf("%d cancelled jobs ran", n)
	}
	for _, id := range []string{done, long} {
		if err := c.Cancel(t.Context(), id); !errors.Is(err, queue.ErrFinished) {
			t.Errorf("Cancel of finished job %s = %v, want ErrFinished", id, err)
		}
	}
	if err := c.Cancel(t.Context(), "no-such-job"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Cancel of an unknown job = %v, want ErrNotFound", err)
	}
	if err := c.Delete(t.Context(), long); err != nil {
		t.Errorf("Delete of a cancelled job: %v", err)
	}
}
