package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/goherd/herd/internal/input"
	"github.com/goherd/herd/internal/replace"
	"github.com/goherd/herd/internal/run"
	"github.com/goherd/herd/queue"
)

// fakeQueue is a queue whose jobs all succeed at once, printing "out" and
// their input. With silentFirst, its first watch of a run says nothing: a
// watch that lost its way in a failover. With late, the first look for
// those jobs does not find them: a server that had not stored yet what a
// killed submitter sent.
type fakeQueue struct {
	mu          sync.Mutex
	meta        map[string][]byte
	jobs        []queue.NewJob
	watches     int
	silentFirst bool
	late        []string
}

func (f *fakeQueue) EnqueueBatch(_ context.Context, jobs []queue.NewJob) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, j := range jobs {
		f.jobs = append(f.jobs, j)
		ids = append(ids, j.Options.ID)
	}
	return ids, nil
}

func (f *fakeQueue) Watch(context.Context, string) (Watcher, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watches++
	w := &fakeWatcher{ch: make(chan *queue.Info, len(f.jobs))}
	if f.watches == 1 && f.silentFirst {
		return w, nil
	}
	for _, j := range f.jobs {
		var cj Job
		json.Unmarshal(j.Payload, &cj)
		res, _ := json.Marshal(Result{Line: cj.Line, Stdout: []byte("out " + strings.Join(cj.Args, " ") + "\n")})
		w.ch <- &queue.Info{ID: j.Options.ID, State: queue.Succeeded, Result: res}
	}
	return w, nil
}

func (f *fakeQueue) Lost(_ context.Context, ids []string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var lost []string
	for _, id := range ids {
		if slices.Contains(f.late, id) {
			lost = append(lost, id)
		}
	}
	f.late = nil
	return lost, nil
}

func (f *fakeQueue) PutMeta(_ context.Context, key string, value []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.meta == nil {
		f.meta = map[string][]byte{}
	}
	f.meta[key] = value
	return nil
}

func (f *fakeQueue) Meta(_ context.Context, key string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.meta[key]; ok {
		return b, nil
	}
	return nil, queue.ErrNotFound
}

func (f *fakeQueue) Stats(context.Context) (*queue.Stats, error) { return &queue.Stats{}, nil }

func (f *fakeQueue) Close() error { return nil }

func (f *fakeQueue) PutFile(context.Context, string, io.Reader) error { return errors.New("no files") }
func (f *fakeQueue) GetFile(context.Context, string, io.Writer) error { return queue.ErrNotFound }
func (f *fakeQueue) DeleteFile(context.Context, string) error         { return nil }

type fakeWatcher struct {
	ch   chan *queue.Info
	once sync.Once
}

func (w *fakeWatcher) Updates() <-chan *queue.Info { return w.ch }
func (w *fakeWatcher) Stop() error {
	w.once.Do(func() { close(w.ch) })
	return nil
}

// A watch that stays silent while jobs are out starts again after a few
// seconds, and the run gets every outcome: under synctest, with no real
// wait.
func TestSilentWatchStartsAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fq := &fakeQueue{silentFirst: true}
		e := &Executor{Open: func(context.Context, io.Writer) (Client, error) { return fq, nil }, QueueName: "default"}
		cfg := &run.Config{
			Template:  replace.Parse("echo", replace.Options{}),
			Shell:     "/bin/sh",
			Input:     input.Config{Sources: []input.Source{{Args: []string{"a", "b", "c"}}}},
			Jobs:      1,
			Attempts:  1,
			KeepOrder: true,
		}
		var out, errOut bytes.Buffer
		start := time.Now()
		status, err := run.New(cfg, strings.NewReader(""), &out, &errOut).Run(t.Context(), e, nil)
		if status != 0 || err != nil || out.String() != "out a\nout b\nout c\n" {
			t.Errorf("status %d (%v), output %q; want 0 and every job's output in order; messages:\n%s", status, err, out.String(), errOut.String())
		}
		if fq.watches != 2 || time.Since(start) != stallFirst {
			t.Errorf("%d watches, the run took %v; want the watch started again after %v", fq.watches, time.Since(start), stallFirst)
		}
	})
}

// Attached to a run whose submitter was killed while it enqueued a batch,
// of which the queue had stored nothing at the first look but every job by
// the end: each job of the batch is shown, and waited for.
func TestAttachFindsJobsStoredLate(t *testing.T) {
	synctest.Test(t, testAttachFindsJobsStoredLate)
}

func testAttachFindsJobsStoredLate(t *testing.T) {
	fq := &fakeQueue{late: []string{"r1.3", "r1.4"}}
	for seq := 1; seq <= 4; seq++ {
		payload, _ := json.Marshal(Job{Run: "r1", Seq: seq, Args: []string{strconv.Itoa(seq)}, Line: "echo " + strconv.Itoa(seq)})
		fq.EnqueueBatch(t.Context(), []queue.NewJob{{Kind: Kind, Payload: payload, Options: queue.Options{ID: "r1." + strconv.Itoa(seq)}}})
	}
	st, _ := json.Marshal(State{Enqueueing: true, Jobs: 2, Enqueued: [][2]int{{1, 2}}, Sending: []int{3, 4}})
	fq.PutMeta(t.Context(), RunKey("r1"), st)
	e := &Executor{Open: func(context.Context, io.Writer) (Client, error) { return fq, nil }, QueueName: "default", Attach: "r1"}
	cfg := &run.Config{Shell: "/bin/sh", Jobs: 1, Attempts: 1, KeepOrder: true} // no template: attached
	var out, errOut bytes.Buffer
	status, err := run.New(cfg, strings.NewReader(""), &out, &errOut).Run(t.Context(), e, nil)
	if status != 0 || err != nil || out.String() != "out 1\nout 2\nout 3\nout 4\n" {
		t.Errorf("status %d (%v), output %q; want 0 and the output of the 4 jobs; messages:\n%s", status, err, out.String(), errOut.String())
	}
}
