package queue

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// Enqueues made at the same time share commits, and each commit is synced
// once; a lone enqueue on an idle queue is committed at once, alone.
func TestGroupCommit(t *testing.T) {
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
