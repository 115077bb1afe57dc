package queue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goherd/herd/internal/testutil"
	"github.com/goherd/herd/queue"
	"github.com/goherd/herd/queue/internal/embedded"
	"github.com/goherd/herd/queue/queuetest"
)

// A result too big for a job's record is kept apart and read back whole,
// by Wait, Info and Watch; deleting the job deletes it too.
func TestBigResult(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 300_000) // 4.8MB: bigger than a NATS message
	queuetest.Work(t, c, fast, map[string]queue.Handler{
		"big": func(context.Context, *queue.Job) ([]byte, error) { return big, nil },
	})
	id, err := c.Enqueue(t.Context(), "big", nil, queue.Options{ID: "big.1"})
	if err != nil {
		t.Fatal(err)
	}
	if info := wait(t, c, id); info.State != queue.Succeeded || !bytes.Equal(info.Result, big) {
		t.Fatalf("Wait: state %s, %d bytes of result; want succeeded with all %d", info.State, len(info.Result), len(big))
	}
	if info, err := c.Info(t.Context(), id); err != nil || !bytes.Equal(info.Result, big) {
		t.Errorf("Info: %v, want the whole result", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	watcher, err := c.Watch(ctx, "big.*")
	if err != nil {
		t.Fatal(err)
	}
	if info := <-watcher.Updates(); info == nil || !bytes.Equal(info.Result, big) {
		t.Errorf("Watch: got %v, want the record with the whole result", info)
	}
	cancel()
	if err := watcher.Stop(); err != nil {
		t.Errorf("Watch ended with %v after its context, want nil", err)
	}
	if err := c.Delete(t.Context(), id); err != nil {
		t.Errorf("Delete: %v", err)
	}
}

// Watch sends the current records of the matching jobs, then their changes,
// and nothing of other jobs.
func TestWatch(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	for i := range 3 {
		if _, err := c.Enqueue(t.Context(), "k", nil, queue.Options{ID: fmt.Sprint("run1.", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Enqueue(t.Context(), "k", nil, queue.Options{ID: "run2.0"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	watcher, err := c.Watch(ctx, "run1.*")
	if err != nil {
		t.Fatal(err)
	}
	queuetest.Work(t, c, fast, map[string]queue.Handler{
		"k": func(_ context.Context, j *queue.Job) ([]byte, error) { return []byte(j.ID), nil },
	})
	succeeded := map[string]bool{}
	timeout := time.After(30 * time.Second)
	for len(succeeded) < 3 {
		select {
		case info := <-watcher.Updates():
			if info.ID == "run2.0" {
				t.Fatalf("Watch(run1.*) sent %s", info.ID)
			}
			if info.State == queue.Succeeded {
				succeeded[info.ID] = string(info.Result) == info.ID
			}
		case <-timeout:
			t.Fatalf("only %v succeeded", succeeded)
		}
	}
	for id, ok := range succeeded {
		if !ok {
			t.Errorf("%s: wrong result", id)
		}
	}
	cancel()
	if err := watcher.Stop(); err != nil {
		t.Errorf("Watch: %v", err)
	}
}

// Enqueueing a batch with ids: an id seen before is stored once, even in
// the same batch; a deleted job's id is free again.
func TestBatchUniqueIDs(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	jobs := []queue.NewJob{
		{Kind: "k", Options: queue.Options{ID: "a.1"}},
		{Kind: "k", Options: queue.Options{ID: "a.2"}},
		{Kind: "k", Options: queue.Options{ID: "a.1"}},
	}
	ids, err := c.EnqueueBatch(t.Context(), jobs)
	if err != nil || !slices.Equal(ids, []string{"a.1", "a.2", "a.1"}) {
		t.Fatalf("EnqueueBatch = %v, %v", ids, err)
	}
	if _, err := c.EnqueueBatch(t.Context(), jobs); err != nil {
		t.Fatal(err)
	}
	if list, err := c.List(t.Context(), "", 100); err != nil || len(list) != 2 {
		t.Fatalf("List = %d jobs, %v; want 2: each id once", len(list), err)
	}
	for _, bad := range []string{".a", "a.", "a..b", "a b", "a*", "a>"} {
		if _, err := c.Enqueue(t.Context(), "k", nil, queue.Options{ID: bad}); err == nil {
			t.Errorf("Enqueue with id %q = nil error", bad)
		}
	}
	// Run one, delete it, enqueue it again: it runs again.
	queuetest.Work(t, c, fast, map[string]queue.Handler{
		"k": func(context.Context, *queue.Job) ([]byte, error) { return nil, nil },
	})
	wait(t, c, "a.1")
	wait(t, c, "a.2")
	if err := c.Delete(t.Context(), "a.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(t.Context(), "k", nil, queue.Options{ID: "a.1"}); err != nil {
		t.Fatal(err)
	}
	if info := wait(t, c, "a.1"); info.State != queue.Succeeded || info.Attempts != 1 {
		t.Errorf("a.1 enqueued again after Delete: %+v", info)
	}
}

// Stats count waiting jobs by queue and priority, and dead ones, and find
// each queue's oldest waiting job, also behind more jobs of another queue
// than a first look reads; List shows the waiting jobs oldest first; Purge
// removes them and their records.
func TestStatsListPurge(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	for i := range 40 {
		if _, err := c.Enqueue(t.Context(), "k", nil, queue.Options{ID: fmt.Sprint("j", i), Queue: "media", Priority: queue.High}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Enqueue(t.Context(), "k", nil, queue.Options{ID: "other"}); err != nil {
		t.Fatal(err)
	}
	st, err := c.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range st.Queues {
		if q.Oldest.IsZero() || time.Since(q.Oldest) > time.Minute {
			t.Errorf("Stats: queue %s: oldest waiting job from %v, want a moment ago", q.Queue, q.Oldest)
		}
		st.Queues[i].Oldest = time.Time{}
	}
	want := []queue.QueueStats{{Queue: "default", Priority: queue.Default, Waiting: 1}, {Queue: "media", Priority: queue.High, Waiting: 40}}
	if !slices.Equal(st.Queues, want) || st.Records != 41 || st.Dead != 0 {
		t.Errorf("Stats = %+v, want queues %+v and 41 records", st, want)
	}
	list, err := c.List(t.Context(), "media", 3)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, info := range list {
		ids = append(ids, info.ID)
	}
	if !slices.Equal(ids, []string{"j0", "j1", "j2"}) {
		t.Errorf("List(media, 3) = %v, want the 3 oldest", ids)
	}
	n, err := c.Purge(t.Context(), "media")
	if err != nil || n != 40 {
		t.Fatalf("Purge(media) = %d, %v; want 40", n, err)
	}
	if _, err := c.Info(t.Context(), "j0"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Info of a purged job = %v, want ErrNotFound", err)
	}
	if list, err := c.List(t.Context(), "", 100); err != nil || len(list) != 1 || list[0].ID != "other" {
		t.Errorf("List after the purge = %v, %v; want only the default queue's job", list, err)
	}
}

// Two servers on one data folder would corrupt it: the second is refused,
// and the folder is free again once the first has closed.
func TestDirInUse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := queue.Open(t.Context(), queue.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := queue.Open(t.Context(), queue.Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("second Open of %s = %v, want an error saying the folder is in use", dir, err)
	}
	if _, err := queue.Serve(queue.ServerConfig{Dir: dir, Listen: "127.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("Serve on %s = %v, want an error saying the folder is in use", dir, err)
	}
	c.Close()
	c, err = queue.Open(t.Context(), queue.Config{Dir: dir})
	if err != nil {
		t.Fatalf("Open after the first closed: %v", err)
	}
	c.Close()
}

// A watch goes on after its server restarts and the client reconnects:
// records written after the restart arrive.
func TestWatchAfterReconnect(t *testing.T) {
	t.Parallel()
	dir, port := t.TempDir(), testutil.FreePorts(t, 1)[0]
	ns := startServer(t, embedded.Config{Dir: dir, Port: port})
	c := open(t, queue.Config{URL: ns.ClientURL()})
	ctx, cancel := context.WithCancel(t.Context())
	watcher, err := c.Watch(ctx, "w.*")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := watcher.Stop(); err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	next := func(id string) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case info := <-watcher.Updates():
				if info.ID == id {
					return
				}
			case <-timeout:
				t.Fatalf("the watch never sent %s", id)
			}
		}
	}
	if _, err := c.Enqueue(t.Context(), "k", nil, queue.Options{ID: "w.1"}); err != nil {
		t.Fatal(err)
	}
	next("w.1")
	ns.Close()
	startServer(t, embedded.Config{Dir: dir, Port: port})
	testutil.EventuallyNil(t, "an enqueue after the restart", func() error {
		_, err := c.Enqueue(t.Context(), "k", nil, queue.Options{ID: "w.2"})
		return err
	})
	next("w.2")
}
