package remote

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/goherd/herd/internal/run"
	"github.com/goherd/herd/queue"
)

// A Worker runs command jobs for herd work, N at a time, each as herd run
// runs a job locally.
type Worker struct {
	// Files holds the files of --transfer, --basefile and --return. With
	// FilesHere, the jobs' files are where they run already (the worker
	// herd run -S starts for ":"): none is fetched, sent back or removed.
	Files     FileStore
	FilesHere bool
	// SSHLogin and SSHHost are the login of herd run -S this worker serves
	// and its host, for the jobs' $PARALLEL_SSHLOGIN and $PARALLEL_SSHHOST
	// (--plus: {sshlogin} and {host}). Empty means this host's name.
	SSHLogin, SSHHost string

	slots   chan int
	env     []string
	host    string
	devNull *os.File
	bases   map[string]*baseFiles // by run

	mu      sync.Mutex
	stopped map[string]string                        // run → how it was stopped
	running map[string]map[uint64]context.CancelFunc // run → its jobs running here, by a number of their own
	tracked uint64                                   // the jobs numbered so far
}

// NewWorker returns a Worker that runs n jobs at once. Close it when done.
func NewWorker(n int) (*Worker, error) {
	w := &Worker{
		slots:   make(chan int, n),
		env:     os.Environ(),
		stopped: map[string]string{},
		running: map[string]map[uint64]context.CancelFunc{},
		bases:   map[string]*baseFiles{},
	}
	for i := range n {
		w.slots <- i + 1
	}
	w.host, _ = os.Hostname()
	var err error
	w.devNull, err = os.Open(os.DevNull)
	return w, err
}

// jobEnv is a job's environment: the worker's, then what the job brings
// (--env), then where it runs.
func (w *Worker) jobEnv(cj Job) []string {
	login, host := cmp.Or(w.SSHLogin, w.host), cmp.Or(w.SSHHost, w.host)
	return slices.Concat(w.env, cj.Env, []string{"PARALLEL_SSHLOGIN=" + login, "PARALLEL_SSHHOST=" + host})
}

// Close releases what the worker holds, and removes the base files of the
// runs that asked for --cleanup.
func (w *Worker) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.bases {
		if b.cleanup {
			removeAll(b.paths)
		}
	}
	return w.devNull.Close()
}

// WatchRuns follows the states of the runs until ctx is done, so that jobs
// of a stopped run do not start, and those of a run stopped now are
// killed.
func (w *Worker) WatchRuns(ctx context.Context, c *queue.Client, stderr io.Writer) {
	for ctx.Err() == nil {
		watcher, err := c.WatchMeta(ctx, RunKey("*"))
		if err == nil {
			for e := range watcher.Updates() {
				var st State
				if json.Unmarshal(e.Value, &st) != nil || st.Stopped == "" {
					continue
				}
				w.stop(strings.TrimPrefix(e.Key, RunKey("")), st.Stopped)
			}
			err = watcher.Stop()
		}
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(stderr, "herd work: following the runs' states: %v; trying again\n", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
		}
	}
}

func (w *Worker) stop(run, how string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped[run] = how
	if how == "now" {
		for _, cancel := range w.running[run] {
			cancel()
		}
	}
}

// track registers a job of a run as running here, and returns its context,
// cancelled if the run is stopped now, and the function that unregisters
// it; or false if the run is stopped already.
func (w *Worker) track(ctx context.Context, run string) (context.Context, func(), bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped[run] != "" {
		return nil, nil, false
	}
	ctx, cancel := context.WithCancel(ctx)
	w.tracked++
	key := w.tracked
	if w.running[run] == nil {
		w.running[run] = map[uint64]context.CancelFunc{}
	}
	w.running[run][key] = cancel
	return ctx, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		cancel()
		delete(w.running[run], key)
		if len(w.running[run]) == 0 {
			delete(w.running, run)
		}
	}, true
}

// decodeJob reads a command job's payload: an error that is permanent if
// it is not one, since it will not become one.
func decodeJob(payload []byte) (Job, error) {
	var cj Job
	if err := json.Unmarshal(payload, &cj); err != nil || cj.Line == "" || cj.Shell == "" {
		return Job{}, queue.Permanent(fmt.Errorf("not a command job of herd run (%v)", err))
	}
	return cj, nil
}

// Handle runs a command job, with its retries and time limit, as herd run
// runs a job locally: the queue's handler of Kind.
func (w *Worker) Handle(ctx context.Context, qj *queue.Job) ([]byte, error) {
	cj, err := decodeJob(qj.Payload)
	if err != nil {
		return nil, err
	}
	jctx, untrack, ok := w.track(ctx, cj.Run)
	if !ok {
		return json.Marshal(Result{Skipped: true})
	}
	defer untrack()
	slot := <-w.slots
	defer func() { w.slots <- slot }()

	res := Result{Host: w.host, Slot: slot, Line: run.Shown(cj.Line, slot)}
	dir, leave, err := run.EnterWorkdir(cj.Workdir, cj.Seq, cj.Cleanup)
	if err == nil {
		defer leave()
		err = w.fetch(ctx, cj, dir)
	}
	if err != nil {
		res.Exit, res.Err, res.Start = -1, err.Error(), time.Now()
		return failed(json.Marshal(res))
	}
	var stdout, stderr bytes.Buffer
	a := &run.Attempts{
		Line: run.WithSlot(cj.Line, slot), Shell: cj.Shell, Seq: cj.Seq, Slot: slot, Env: w.jobEnv(cj), Stdin: cj.Stdin, DevNull: w.devNull,
		Attempts: cj.Attempts, TermSeq: cj.TermSeq, Nice: cj.Nice, Pass: cj.Pass, Dir: dir, Timeout: func() time.Duration { return cj.Timeout },
		Output: func() (io.Writer, io.Writer, func()) {
			stdout.Reset()
			stderr.Reset()
			return &stdout, &stderr, func() {}
		},
	}
	r := a.Run(jctx)
	if ctx.Err() != nil {
		// This worker is stopping and killed the job: the queue gives it
		// to another worker, to run from the start.
		return nil, ctx.Err()
	}
	res.Start, res.Duration, res.Exit, res.Signal, res.Killed = r.Start, r.Duration, r.Exit, r.Signal, r.Killed
	if r.Err != nil {
		res.Err = r.Err.Error()
	}
	res.Stdout, res.Stderr = stdout.Bytes(), stderr.Bytes()
	if err := w.sendBack(ctx, cj, dir, &res); err != nil && res.Err == "" {
		res.Err = err.Error()
	}
	return failed(json.Marshal(res))
}

// failed turns a command job's result into the queue's outcome: a command
// that failed after its attempts makes the job dead, with its result kept,
// so that the jobs waiting for it do not run and herd queue retry can run
// it again.
func failed(b []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	var res Result
	if json.Unmarshal(b, &res) != nil || res.Exit == 0 && res.Signal == 0 && res.Err == "" {
		return b, nil
	}
	why := fmt.Sprintf("exit status %d", res.Exit)
	switch {
	case res.Err != "":
		why = res.Err
	case res.Signal != 0:
		why = fmt.Sprintf("killed by signal %d", res.Signal)
	}
	return b, queue.Permanent(errors.New(why))
}
