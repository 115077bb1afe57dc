package queue_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goherd/herd/queue"
	"github.com/goherd/herd/queue/queuetest"
)

type email struct {
	To string `json:"to"`
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	queuetest.Work(t, c, fast, map[string]queue.Handler{
		"email": func(ctx context.Context, j *queue.Job) ([]byte, error) {
			e, err := queue.Decode[email](j)
			if err != nil {
				return nil, queue.Permanent(err)
			}
			return []byte("sent to " + e.To), nil
		},
	})
	id, err := queue.Enqueue(t.Context(), c, "email", email{To: "a@example.com"}, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	info := wait(t, c, id)
	if info.State != queue.Succeeded || string(info.Result) != "sent to a@example.com" || info.Attempts != 1 {
		t.Errorf("Wait = %+v, want succeeded after 1 attempt with the result", info)
	}
	got, err := c.Info(t.Context(), id)
	if err != nil || got.State != queue.Succeeded {
		t.Errorf("Info = %+v, %v", got, err)
	}
	if _, err := c.Info(t.Context(), "nope"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Info(unknown) = %v, want ErrNotFound", err)
	}
	if lost, err := c.Lost(t.Context(), []string{id, "nope"}); err != nil || !slices.Equal(lost, []string{"nope"}) {
		t.Errorf("Lost(finished, unknown) = %q, %v; want the unknown one", lost, err)
	}
}

func TestUniqueIDRunsOnce(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	var runs atomic.Int64
	for range 3 {
		id, err := c.Enqueue(t.Context(), "count", nil, queue.Options{ID: "once"})
		if err != nil || id != "once" {
			t.Fatalf("Enqueue = %q, %v", id, err)
		}
	}
	queuetest.Work(t, c, fast, map[string]queue.Handler{
		"count": func(context.Context, *queue.Job) ([]byte, error) { runs.Add(1); return nil, nil },
	})
	wait(t, c, "once")
	// A duplicate would be right behind it in the stream.
	id2, _ := c.Enqueue(t.Context(), "count", nil, queue.Options{ID: "after"})
	wait(t, c, id2)
	if runs.Load() != 2 {
		t.Errorf("%d runs, want 2: the id enqueued three times runs once", runs.Load())
	}
}

func TestRetriesThenSucceeds(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	queuetest.Work(t, c, fast, map[string]queue.Handler{
		"flaky": func(_ context.Context, j *queue.Job) ([]byte, error) {
			if j.Attempt < 3 {
				return nil, fmt.Errorf("not yet (%d)", j.Attempt)
			}
			return []byte("ok"), nil
		},
	})
	id, _ := c.Enqueue(t.Context(), "flaky", nil, queue.Options{})
	info := wait(t, c, id)
	want := []string{"attempt 1: not yet (1)", "attempt 2: not yet (2)"}
	if info.State != queue.Succeeded || info.Attempts != 3 || !slices.Equal(info.Errors, want) {
		t.Errorf("job = %+v, want succeeded on attempt 3 with errors %q", info, want)
	}
	// The record names the worker of the last attempt, and when it began.
	// (Its id is host-pid-random, and the worker runs in this process.)
	if !strings.Contains(info.Worker, "-"+strconv.Itoa(os.Getpid())+"-") {
		t.Errorf("job's worker %q, want this process's", info.Worker)
	}
	if info.StartedAt.Before(info.EnqueuedAt) || info.StartedAt.After(info.UpdatedAt) {
		t.Errorf("last attempt started at %v; enqueued at %v, ended at %v", info.StartedAt, info.EnqueuedAt, info.UpdatedAt)
	}
}

func TestDeadLetters(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	var healed atomic.Bool
	queuetest.Work(t, c, fast, map[string]queue.Handler{
		"bad-payload": func(_ context.Context, j *queue.Job) ([]byte, error) {
			_, err := queue.Decode[email](j)
			return nil, err
		},
		"panics": func(context.Context, *queue.Job) ([]byte, error) {
			panic("boom: " + "nil map")
		},
		"permanent": func(context.Context, *queue.Job) ([]byte, error) {
			if healed.Load() {
				return []byte("fixed"), nil
			}
			return nil, queue.Permanent(errors.New("no such user"))
		},
		"fine": func(context.Context, *queue.Job) ([]byte, error) { return []byte("fine"), nil },
	})
	poison, _ := c.Enqueue(t.Context(), "bad-payload", []byte("{not json"), queue.Options{MaxAttempts: 3})
	panicky, _ := c.Enqueue(t.Context(), "panics", nil, queue.Options{MaxAttempts: 2})
	perm, _ := c.Enqueue(t.Context(), "permanent", nil, queue.Options{MaxAttempts: 10})
	fine, _ := c.Enqueue(t.Context(), "fine", nil, queue.Options{})

	if info := wait(t, c, poison); info.State != queue.Dead || info.Attempts != 3 || len(info.Errors) != 3 {
		t.Errorf("poison payload: %+v, want dead after 3 attempts", info)
	}
	info := wait(t, c, panicky)
	if info.State != queue.Dead || info.Attempts != 2 || !strings.Contains(info.Errors[0], "boom: nil map") || !strings.Contains(info.Errors[0], "goroutine") {
		t.Errorf("panicking job: %+v, want dead after 2 attempts with the panic and its stack", info)
	}
	if info := wait(t, c, perm); info.State != queue.Dead || info.Attempts != 1 {
		t.Errorf("permanent failure: %+v, want dead after 1 attempt", info)
	}
	if info := wait(t, c, fine); info.State != queue.Succeeded {
		t.Errorf("the worker stopped serving after the failures: %+v", info)
	}

	dead, err := c.Dead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range dead {
		ids = append(ids, d.ID)
	}
	slices.Sort(ids)
	want := []string{poison, panicky, perm}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("Dead = %v, want %v", ids, want)
	}

	healed.Store(true)
	if err := c.Retry(t.Context(), perm); err != nil {
		t.Fatal(err)
	}
	if info := wait(t, c, perm); info.State != queue.Succeeded || string(info.Result) != "fixed" || len(info.Errors) != 1 {
		t.Errorf("retried job: %+v, want succeeded, with the old error kept", info)
	}
	if err := c.Delete(t.Context(), poison); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Info(t.Context(), poison); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Info after Delete = %v, want ErrNotFound", err)
	}
	if dead, err := c.Dead(t.Context()); err != nil || len(dead) != 1 || dead[0].ID != panicky {
		t.Errorf("Dead after a retry and a delete = %v, %v; want only %s", dead, err, panicky)
	}
}

func TestPriorityAndDelay(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	var mu sync.Mutex
	var order []string
	ids := map[string]string{}
	for _, p := range []struct {
		name string
		prio queue.Priority
	}{{"low", queue.Low}, {"default", queue.Default}, {"high", queue.High}} {
		id, err := c.Enqueue(t.Context(), "record", []byte(p.name), queue.Options{Priority: p.prio})
		if err != nil {
			t.Fatal(err)
		}
		ids[p.name] = id
	}
	later, _ := c.Enqueue(t.Context(), "record", []byte("later"), queue.Options{Delay: 500 * time.Millisecond, Priority: queue.High})
	if info, _ := c.Info(t.Context(), later); info.State != queue.Scheduled {
		t.Errorf("delayed job is %s, want scheduled", info.State)
	}
	start := time.Now()
	cfg := fast
	cfg.Concurrency = 1
	queuetest.Work(t, c, cfg, map[string]queue.Handler{
		"record": func(_ context.Context, j *queue.Job) ([]byte, error) {
			mu.Lock()
			order = append(order, string(j.Payload))
			mu.Unlock()
			return nil, nil
		},
	})
	wait(t, c, ids["low"])
	info := wait(t, c, later)
	if d := info.UpdatedAt.Sub(start); d < 400*time.Millisecond {
		t.Errorf("delayed job ran after %v, want no sooner than its delay", d)
	}
	mu.Lock()
	defer mu.Unlock()
	// The delayed job comes once it is due, wherever that falls among the
	// others (a busy machine may start the worker after its delay).
	now := slices.DeleteFunc(slices.Clone(order), func(name string) bool { return name == "later" })
	if want := []string{"high", "default", "low"}; !slices.Equal(now, want) || len(order) != 4 {
		t.Errorf("ran in order %q, want %q, and the delayed job once", order, want)
	}
}

func TestLongJobKeepsItsLease(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	var runs atomic.Int64
	cfg := fast
	// A lease of a second, renewed every third of it: a busy machine may
	// hold a renewal back for some hundreds of milliseconds.
	cfg.Lease = time.Second
	queuetest.Work(t, c, cfg, map[string]queue.Handler{
		"slow": func(context.Context, *queue.Job) ([]byte, error) {
			runs.Add(1)
			time.Sleep(3500 * time.Millisecond)
			return nil, nil
		},
	})
	id, _ := c.Enqueue(t.Context(), "slow", nil, queue.Options{})
	if info := wait(t, c, id); info.State != queue.Succeeded || info.Attempts != 1 {
		t.Errorf("job = %+v, want one attempt", info)
	}
	if runs.Load() != 1 {
		t.Errorf("handler ran %d times, want once: the lease was not kept alive", runs.Load())
	}
}

// A job a worker has taken ahead, waiting for the job before it to end,
// keeps its lease too: it is not taken by another worker meanwhile, to
// run twice.
func TestJobTakenAheadKeepsItsLease(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	var mu sync.Mutex
	runs := map[string]int{}
	handlers := map[string]queue.Handler{"slow": func(_ context.Context, j *queue.Job) ([]byte, error) {
		mu.Lock()
		runs[j.ID]++
		mu.Unlock()
		time.Sleep(6 * time.Second) // three leases: the job taken ahead waits that long
		return nil, nil
	}}
	var ids []string
	for range 4 {
		id, err := c.Enqueue(t.Context(), "slow", nil, queue.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// One job at a time each: a worker takes two, runs one, and the other
	// waits; the second worker would find it when its lease runs out. (A
	// lease of 2s: a busy machine may take a second from a job's delivery
	// to its worker's first look at it, before any renewal.)
	cfg := queue.WorkerConfig{Concurrency: 1, Lease: 2 * time.Second}
	queuetest.Work(t, c, cfg, handlers)
	queuetest.Work(t, c, cfg, handlers)
	for _, id := range ids {
		if info := wait(t, c, id); info.State != queue.Succeeded || info.Attempts != 1 {
			t.Errorf("job %s: %+v, want succeeded at its first attempt", id, info)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for id, n := range runs {
		if n != 1 {
			t.Errorf("job %s ran %d times, want once", id, n)
		}
	}
}

func TestShutdownHandsBackRunningJobs(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	started := make(chan struct{}, 1)
	w, _ := c.NewWorker(queue.WorkerConfig{Concurrency: 1, ShutdownTimeout: 100 * time.Millisecond})
	w.Handle("long", func(ctx context.Context, j *queue.Job) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	id, _ := c.Enqueue(t.Context(), "long", nil, queue.Options{})
	<-started
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(t.Context(), id)
	if err != nil || info.State != queue.Queued || info.Attempts != 0 {
		t.Fatalf("after shutdown the job is %+v, %v; want queued again with no attempt counted", info, err)
	}
	// Another worker picks it up.
	queuetest.Work(t, c, fast, map[string]queue.Handler{
		"long": func(context.Context, *queue.Job) ([]byte, error) { return []byte("done"), nil },
	})
	if info := wait(t, c, id); info.State != queue.Succeeded {
		t.Errorf("handed-back job = %+v, want succeeded by the next worker", info)
	}
}

func TestBatchAndTimeout(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	queuetest.Work(t, c, fast, map[string]queue.Handler{
		"sleep": func(ctx context.Context, j *queue.Job) ([]byte, error) {
			select {
			case <-time.After(time.Minute):
				return nil, nil
			case <-ctx.Done():
				return nil, queue.Permanent(ctx.Err())
			}
		},
		"echo": func(_ context.Context, j *queue.Job) ([]byte, error) { return j.Payload, nil },
	})
	var jobs []queue.NewJob
	for i := range 50 {
		jobs = append(jobs, queue.NewJob{Kind: "echo", Payload: fmt.Append(nil, i)})
	}
	ids, err := c.EnqueueBatch(t.Context(), jobs)
	if err != nil || len(ids) != 50 {
		t.Fatalf("EnqueueBatch = %d ids, %v", len(ids), err)
	}
	for i, id := range ids {
		if info := wait(t, c, id); string(info.Result) != fmt.Sprint(i) {
			t.Errorf("job %d result %q", i, info.Result)
		}
	}
	id, _ := c.Enqueue(t.Context(), "sleep", nil, queue.Options{Timeout: 100 * time.Millisecond})
	if info := wait(t, c, id); info.State != queue.Dead || !strings.Contains(info.Errors[0], "deadline exceeded") {
		t.Errorf("timed-out job = %+v", info)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	for _, tc := range []struct {
		kind string
		opts queue.Options
	}{
		{"", queue.Options{}},
		{"k", queue.Options{ID: "a..b"}},
		{"k", queue.Options{Queue: "x y"}},
		{"k", queue.Options{Queue: "x.y"}},
		{"k", queue.Options{MaxAttempts: -1}},
	} {
		if _, err := c.Enqueue(t.Context(), tc.kind, nil, tc.opts); err == nil || !strings.HasPrefix(err.Error(), "queue: enqueue") {
			t.Errorf("Enqueue(%q, %+v) = %v, want a queue: enqueue error", tc.kind, tc.opts, err)
		}
	}
	if _, err := queue.Enqueue(t.Context(), c, "k", func() {}, queue.Options{}); err == nil {
		t.Errorf("Enqueue of a func payload = nil error")
	}
}
