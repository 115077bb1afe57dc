package queue_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goherd/herd/internal/testutil"
	"github.com/goherd/herd/queue"
	"github.com/goherd/herd/queue/queuetest"
)

// Damaged files that lost the messages of jobs that had started, but not
// their records: the queue puts them back from their records when its
// server starts, in process or as herd queue serve, and says so; every
// job then runs to the end, its attempts counted on.
func TestRepairAtStart(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"embedded", "serve"} {
		t.Run(how, func(t *testing.T) {
			dir, ids := startedJobs(t)
			damageBlock(t, dir, 2)

			var log testutil.Buffer
			logger := slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelInfo}))
			var c *queue.Client
			if how == "embedded" {
				c = open(t, queue.Config{Dir: dir, Logger: logger})
			} else {
				s, err := queue.Serve(queue.ServerConfig{Dir: dir, Listen: "127.0.0.1:0", Logger: logger})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(s.Close)
				c = open(t, queue.Config{URL: s.URL()})
			}
			if !strings.Contains(log.String(), "nats-server: Filestore [HERD]") {
				t.Errorf("the server said nothing of the damage; the log:\n%s", log.String())
			}
			var back []string
			for line := range strings.Lines(log.String()) {
				if strings.Contains(line, "put them back") {
					back = append(back, line)
				}
			}
			if len(back) != 1 || !strings.Contains(back[0], "level=ERROR") {
				t.Fatalf("the queue did not say, once and as an error, that it put jobs back; the log:\n%s", log.String())
			}

			// Every job is still known, and the ones put back are waiting.
			// (A read may time out while a busy machine's server is still
			// busy with the repair: it is asked again.)
			var lost []string
			testutil.EventuallyNil(t, "Lost to answer", func() (err error) {
				lost, err = c.Lost(t.Context(), ids)
				return err
			})
			if len(lost) > 0 {
				t.Fatalf("Lost named %d jobs, want none: each had a record; the log:\n%s", len(lost), log.String())
			}
			var putBack []string
			for _, id := range ids {
				info, err := c.Info(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				if info.State == queue.Queued {
					putBack = append(putBack, id)
					if info.Attempts != 1 || len(info.Errors) != 1 || len(info.Payload) != 64<<10 {
						t.Errorf("%s put back with %d attempts, errors %q and a payload of %d bytes; want 1, one error and 64 KiB",
							id, info.Attempts, info.Errors, len(info.Payload))
					}
				}
			}
			if len(putBack) == 0 || !strings.Contains(back[0], "jobs="+strconv.Itoa(len(putBack))) {
				t.Fatalf("%d jobs waiting again; the log says: %s", len(putBack), back[0])
			}
			if again, err := c.Repair(t.Context()); err != nil || len(again) > 0 {
				t.Errorf("Repair by hand after the repair at start: %v, %v; want nothing to do", again, err)
			}

			// The jobs put back run, once, as second attempts.
			var mu sync.Mutex
			runs := map[string]int{}
			queuetest.Work(t, c, fast, map[string]queue.Handler{"job": func(ctx context.Context, j *queue.Job) ([]byte, error) {
				mu.Lock()
				defer mu.Unlock()
				runs[j.ID]++
				return nil, nil
			}})
			for _, id := range putBack {
				if info := wait(t, c, id); info.State != queue.Succeeded || info.Attempts != 2 {
					t.Errorf("%s %s at attempt %d, want succeeded at 2", id, info.State, info.Attempts)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range putBack {
				if runs[id] != 1 {
					t.Errorf("%s ran %d times, want once", id, runs[id])
				}
			}
		})
	}
}

// startedJobs returns a data folder holding 200 jobs that each failed
// once and wait an hour for their next attempt, and their ids. Each has a
// payload of 64 KiB, so that the jobs' messages fill the first blocks of
// the queue's files, and their records later ones.
func startedJobs(t *testing.T) (string, []string) {
	dir := t.TempDir()
	c, err := queue.Open(t.Context(), queue.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	jobs := make([]queue.NewJob, 200)
	for i := range jobs {
		jobs[i] = queue.NewJob{Kind: "job", Payload: make([]byte, 64<<10)}
	}
	ids, err := c.EnqueueBatch(t.Context(), jobs)
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.NewWorker(queue.WorkerConfig{Concurrency: 8, Backoff: time.Hour, MaxBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	w.Handle("job", func(ctx context.Context, j *queue.Job) ([]byte, error) { return nil, errors.New("not yet") })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for i := 0; i < len(ids); {
		info, err := c.Info(t.Context(), ids[i])
		switch {
		case err != nil:
			t.Fatal(err)
		case info.State == queue.Retrying:
			i++
		default:
			time.Sleep(20 * time.Millisecond)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return dir, ids
}

// damageBlock overwrites the second half of the nth block file of the
// queue's jobs and records in the data folder dir, as a failing disk
// might, while no server uses it.
func damageBlock(t *testing.T, dir string, n int) {
	t.Helper()
	blocks, err := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", "HERD", "msgs", "*.blk"))
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(filepath.Dir(blocks[0]), strconv.Itoa(n)+".blk")
	if !slices.Contains(blocks, name) || len(blocks) < n+2 {
		t.Fatalf("the queue's block files: %v; want %s and two after it", blocks, name)
	}
	info, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	junk := []byte(strings.Repeat("\xa5", int(info.Size()/2)))
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(junk, info.Size()-int64(len(junk))); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
