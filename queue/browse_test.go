package queue_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goherd/herd/internal/testutil"
	"github.com/goherd/herd/queue"
	"github.com/goherd/herd/queue/queuetest"
)

// Jobs pages through the jobs by state, queue, kind, id and error text,
// and a page's cursor leads to the next one; the dead jobs are counted by
// queue.
func TestJobsPages(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	ctx := t.Context()
	var jobs []queue.NewJob
	for i := range 7 {
		jobs = append(jobs, queue.NewJob{Kind: "ok", Options: queue.Options{ID: fmt.Sprintf("ok-%d", i), Queue: "a"}})
	}
	for i := range 3 {
		jobs = append(jobs, queue.NewJob{Kind: "bad", Options: queue.Options{ID: fmt.Sprintf("bad-%d", i), Queue: "b", MaxAttempts: 1}})
	}
	if _, err := c.EnqueueBatch(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(ctx, "later", nil, queue.Options{ID: "later", Queue: "a", Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// Before any worker: every job waits.
	ids := func(q queue.JobQuery) (got []string, next uint64) {
		t.Helper()
		page, err := c.Jobs(ctx, q)
		if err != nil {
			t.Fatalf("Jobs(%+v): %v", q, err)
		}
		for _, info := range page.Jobs {
			got = append(got, info.ID)
		}
		return got, page.Next
	}
	got, next := ids(queue.JobQuery{Queue: "a", Limit: 4})
	if want := []string{"ok-0", "ok-1", "ok-2", "ok-3"}; !slices.Equal(got, want) || next == 0 {
		t.Errorf("Jobs(queue a, 4) = %v, next %d; want %v and a next page", got, next, want)
	}
	got, next = ids(queue.JobQuery{Queue: "a", Limit: 4, After: next})
	if want := []string{"ok-4", "ok-5", "ok-6", "later"}; !slices.Equal(got, want) || next != 0 {
		t.Errorf("Jobs(queue a, page 2) = %v, next %d; want %v and no next page", got, next, want)
	}
	if got, _ := ids(queue.JobQuery{Kind: "bad", IDPrefix: "bad-1"}); !slices.Equal(got, []string{"bad-1"}) {
		t.Errorf("Jobs(kind bad, id bad-1) = %v, want [bad-1]", got)
	}

	var retried atomic.Bool // by hand: bad jobs succeed from then on, and are not dead again
	queuetest.Work(t, c, queue.WorkerConfig{Queues: []string{"a", "b"}}, map[string]queue.Handler{
		"ok": func(context.Context, *queue.Job) ([]byte, error) { return nil, nil },
		"bad": func(_ context.Context, j *queue.Job) ([]byte, error) {
			if retried.Load() {
				return nil, nil
			}
			return nil, errors.New("broken " + j.ID)
		},
	})
	for _, j := range jobs {
		wait(t, c, j.Options.ID)
	}
	if got, _ := ids(queue.JobQuery{State: queue.Dead}); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"bad-0", "bad-1", "bad-2"}) {
		t.Errorf("Jobs(dead) = %v, want the three bad ones", got)
	}
	if got, _ := ids(queue.JobQuery{State: queue.Dead, Error: "broken bad-2"}); !slices.Equal(got, []string{"bad-2"}) {
		t.Errorf("Jobs(dead, error \"broken bad-2\") = %v, want [bad-2]", got)
	}
	if got, _ := ids(queue.JobQuery{State: queue.Succeeded, Queue: "a"}); len(got) != 7 {
		t.Errorf("Jobs(succeeded in a) = %v, want 7", got)
	}
	if got, _ := ids(queue.JobQuery{Queue: "a"}); !slices.Equal(got, []string{"later"}) {
		t.Errorf("Jobs(unfinished in a) = %v, want [later]", got)
	}
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dead != 3 || st.DeadIn["b"] != 3 || st.DeadIn["a"] != 0 {
		t.Errorf("Stats: dead %d, by queue %v; want 3, all in b", st.Dead, st.DeadIn)
	}
	if err := c.Delete(ctx, "bad-0"); err != nil {
		t.Fatal(err)
	}
	retried.Store(true)
	if err := c.Retry(ctx, "bad-1"); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Stats(ctx); err != nil || st.Dead != 1 {
		t.Errorf("Stats after a delete and a retry: %+v, %v; want 1 dead", st, err)
	}
	if _, err := c.Jobs(ctx, queue.JobQuery{State: "gone"}); err == nil {
		t.Error("Jobs(state gone) = nil error")
	}

	counts := c.Counts()
	byQueue := map[string]queue.QueueCounts{}
	for _, q := range counts.Queues {
		byQueue[q.Queue] = q
	}
	if a := byQueue["a"]; a.Enqueued != 8 || a.Succeeded != 7 || a.Duration.Count != 7 || a.Wait.Count != 7 {
		t.Errorf("Counts of queue a = %+v, want 8 enqueued, 7 succeeded, timed and waited", a)
	}
	if b := byQueue["b"]; b.Enqueued != 3 || b.Dead < 3 {
		t.Errorf("Counts of queue b = %+v, want 3 enqueued, 3 dead", b)
	}
}

// A running worker is listed with what it runs; drained, it takes no new
// job until it is resumed; stopped, it is gone from the list.
func TestWorkersListedAndDrained(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	ctx := t.Context()
	started, release := make(chan string, 1), make(chan struct{})
	wctx, stop := context.WithCancel(ctx)
	w, err := c.NewWorker(queue.WorkerConfig{Queues: []string{"w"}, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	w.Handle("k", func(_ context.Context, j *queue.Job) ([]byte, error) {
		started <- j.ID
		<-release
		return nil, nil
	})
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	stopped := false
	defer func() {
		if !stopped {
			close(release)
			stop()
			<-done
		}
	}()
	if _, err := c.Enqueue(ctx, "k", nil, queue.Options{ID: "first", Queue: "w"}); err != nil {
		t.Fatal(err)
	}
	<-started
	var me queue.WorkerInfo
	testutil.Eventually(t, "the worker to list its running job", func() bool {
		ws, err := c.Workers(ctx)
		if err != nil || len(ws) != 1 || len(ws[0].Running) != 1 {
			return false
		}
		me = ws[0]
		return true
	})
	if me.Concurrency != 2 || me.Running[0].ID != "first" || !slices.Equal(me.Queues, []string{"w"}) {
		t.Errorf("Workers = %+v, want concurrency 2 on queue w running first", me)
	}
	if err := c.Drain(ctx, me.ID, true); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the worker to say it drains", func() bool {
		ws, err := c.Workers(ctx)
		return err == nil && len(ws) == 1 && ws[0].Draining
	})
	release <- struct{}{}
	if _, err := c.Enqueue(ctx, "k", nil, queue.Options{ID: "second", Queue: "w"}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-started:
		t.Fatalf("a draining worker started %s", id)
	case <-time.After(time.Second):
	}
	if err := c.Drain(ctx, me.ID, false); err != nil {
		t.Fatal(err)
	}
	if id := <-started; id != "second" {
		t.Errorf("resumed, the worker started %s, want second", id)
	}
	if err := c.Drain(ctx, "no-such-worker", true); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Drain(no-such-worker) = %v, want ErrNotFound", err)
	}
	stopped = true
	close(release)
	stop()
	if err := <-done; err != nil {
		t.Error(err)
	}
	if ws, err := c.Workers(ctx); err != nil || len(ws) != 0 {
		t.Errorf("Workers after the worker stopped = %v, %v; want none", ws, err)
	}
}
