package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// Enqueues made at the same time share commits, and each commit is synced
// once; a lone enqueue on an idle queue is committed at once, alone.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	c, err := Open(t.Context(), Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Enqueue(t.Context(), "k", nil, Options{}); err != nil {
		t.Fatal(err)
	}
	before := c.commit.commits.Load()
	if _, err := c.Enqueue(t.Context(), "k", nil, Options{}); err != nil {
		t.Fatal(err)
	}
	if n := c.commit.commits.Load() - before; n != 1 {
		t.Errorf("a lone Enqueue took %d commits, want 1", n)
	}

	const callers, each = 64, 20
	before = c.commit.commits.Load()
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Go(func() {
			for i := range each {
				if _, err := c.Enqueue(context.Background(), "k", nil, Options{ID: fmt.Sprintf("g%d.%d", g, i)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	commits := c.commit.commits.Load() - before
	if commits >= callers*each {
		t.Errorf("%d enqueues from %d callers took %d commits, want fewer: they run side by side", callers*each, callers, commits)
	}
	t.Logf("%d enqueues from %d callers in %d commits", callers*each, callers, commits)
	for g := range callers {
		for i := range each {
			if _, err := c.Info(t.Context(), fmt.Sprintf("g%d.%d", g, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Lazy writes are stored without a sync of their own: the next commit's
// sync makes them durable, or the committer's own once none comes; flush
// waits for it, and a sync's error reaches it.
func TestLazyWrites(t *testing.T) {
	t.Parallel()
	c, err := Open(t.Context(), Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	syncs := 0
	var fail error
	real := c.commit.sync
	hold := make(chan struct{}) // while open, syncs wait
	close(hold)
	c.commit.sync = func() error {
		<-hold
		mu.Lock()
		defer mu.Unlock()
		syncs++
		if fail != nil {
			return fail
		}
		return real()
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return syncs
	}
	msg := func(subject string) []*nats.Msg {
		return []*nats.Msg{{Subject: subject, Data: []byte("x"), Header: nats.Header{}}}
	}

	// A lazy write is stored at once; its sync comes after.
	hold = make(chan struct{})
	if errs, err := c.commit.storeLazy(t.Context(), msg(flowRoot+".a")); err != nil || errs[0] != nil {
		t.Fatalf("storeLazy = %v, %v", errs, err)
	}
	if n := count(); n != 0 {
		t.Errorf("%d syncs before the lazy write returned, want 0", n)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- c.commit.flush(t.Context()) }()
	select {
	case err := <-flushed:
		t.Fatalf("flush returned %v before a sync", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(hold)
	if err := <-flushed; err != nil {
		t.Fatalf("flush = %v", err)
	}
	if n := count(); n != 1 {
		t.Errorf("%d syncs for a lone lazy write, want 1 (the committer's own)", n)
	}

	// A lazy write followed by a normal one: one sync for both (the
	// committer would sync the lazy one itself only after an hour).
	c.commit.lazyAfter = time.Hour
	before := count()
	if _, err := c.commit.storeLazy(t.Context(), msg(flowRoot+".b")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.commit.store(t.Context(), msg(flowRoot+".c")); err != nil {
		t.Fatal(err)
	}
	if err := c.commit.flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := count() - before; n != 1 {
		t.Errorf("%d syncs for a lazy write and a normal one after it, want 1", n)
	}

	// A sync that fails fails the flush.
	c.commit.lazyAfter = lazySyncAfter
	mu.Lock()
	fail = errors.New("disk on fire")
	mu.Unlock()
	if _, err := c.commit.storeLazy(t.Context(), msg(flowRoot+".d")); err != nil {
		t.Fatal(err)
	}
	if err := c.commit.flush(t.Context()); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("flush after a failed sync = %v, want its error", err)
	}
	mu.Lock()
	fail = nil
	mu.Unlock()
}
