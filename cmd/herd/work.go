package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/goherd/herd/internal/command"
	"github.com/goherd/herd/queue"
	"github.com/spf13/cobra"
)

const workHelp = `Run the jobs that herd run --queue puts on a queue, N at a time, until stopped.

Each job runs exactly as herd run runs it locally: its command line (already expanded
and quoted by herd run) in a shell of its own process group, with PARALLEL_SEQ and
PARALLEL_JOBSLOT set, its retries and time limit. It gets this worker's environment
and working folder. Its output, exit status and times go back to the queue, and from
there to herd run.

Anyone who can put jobs on the queue can run commands here: protect a queue that
others can reach with --user/--password, --token or --creds on the server (herd
queue serve), and TLS.

A worker that stops on SIGINT or SIGTERM takes no more jobs and lets the running ones
finish for up to --shutdown-timeout; a second signal (or the end of that time) kills
them and hands them back to the queue, for another worker to run from the start. A
worker that dies without handing its jobs back loses them for --lease at most: then
the queue gives them to another worker.`

type workOptions struct {
	conn            connFlags
	jobs            string
	queues          []string
	lease           time.Duration
	shutdownTimeout time.Duration
}

func newWorkCommand(ctx context.Context, sigs <-chan os.Signal, status *int) *cobra.Command {
	var o workOptions
	cmd := &cobra.Command{
		Use:   "work --queue URL [-j N]",
		Short: "run the jobs of herd run --queue, N at a time",
		Long:  workHelp,
		Example: `  herd work --queue nats://queue-host:4222 -j 8
  HERD_QUEUE=nats://queue-host:4222 herd work --queue-name gpu -j 2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := parseJobs(o.jobs, runtime.NumCPU())
			if err != nil {
				return err
			}
			if o.lease <= 0 || o.shutdownTimeout < 0 {
				return fmt.Errorf("--lease %v, --shutdown-timeout %v: want a positive lease and a timeout of 0 or more", o.lease, o.shutdownTimeout)
			}
			*status = o.work(ctx, n, sigs, cmd.ErrOrStderr())
			return nil
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	o.conn.add(f, false)
	f.StringVarP(&o.jobs, "jobs", "j", "", "run `N` jobs at once: N, N% of the CPUs, +N or -N CPUs (default: the number of CPUs)")
	f.StringSliceVar(&o.queues, "queue-name", []string{"default"}, "take jobs from these named queues (`NAME`[,NAME...])")
	f.DurationVar(&o.lease, "lease", 30*time.Second, "give a job to another worker when this worker has not been heard of for this long (shared by a queue's workers)")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGINT or SIGTERM, let running jobs finish for this long before handing them back")
	return cmd
}

func (o *workOptions) work(ctx context.Context, n int, sigs <-chan os.Signal, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "herd work: %v\n", err)
		return exitError
	}
	if o.conn.resolve(); o.conn.url == "" {
		return fail(errors.New("no queue: give --queue URL or set HERD_QUEUE (start a queue server with herd queue serve)"))
	}
	c, err := o.conn.open(ctx, stderr)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	w, err := c.NewWorker(queue.WorkerConfig{Queues: o.queues, Concurrency: n, Lease: o.lease, ShutdownTimeout: max(o.shutdownTimeout, time.Nanosecond)})
	if err != nil {
		return fail(err)
	}
	cw, err := newCommandWorker(n)
	if err != nil {
		return fail(err)
	}
	defer cw.devNull.Close()
	w.Handle(commandKind, cw.handle)

	// The worker hears of runs that are stopped.
	watchCtx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopWatch()
	wg.Go(func() { cw.watchRuns(watchCtx, c, stderr) })

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	finished := make(chan struct{})
	defer close(finished)
	stopSig := make(chan int, 1)
	wg.Go(func() {
		n := 0
		for {
			select {
			case <-finished:
				return
			case s := <-sigs:
				n++
				if n == 1 {
					sig, _ := s.(syscall.Signal)
					stopSig <- int(sig)
					fmt.Fprintf(stderr, "herd work: got %v: taking no more jobs; the running ones have %v to finish (signal again to hand them back now)\n", s, o.shutdownTimeout)
					stop()
					continue
				}
				fmt.Fprintf(stderr, "herd work: got %v again: handing the running jobs back to the queue\n", s)
				w.Abort()
			}
		}
	})
	fmt.Fprintf(stderr, "herd work: running jobs of %s from %s, %d at a time\n", strings.Join(o.queues, ", "), o.conn.url, n)
	if err := w.Run(runCtx); err != nil {
		return fail(err)
	}
	select {
	case sig := <-stopSig:
		fmt.Fprintln(stderr, "herd work: stopped")
		return 128 + sig
	default:
		return 0
	}
}

// commandWorker runs command jobs.
type commandWorker struct {
	slots   chan int
	env     []string
	host    string
	devNull *os.File

	mu      sync.Mutex
	stopped map[string]string                        // run → how it was stopped
	running map[string]map[uint64]context.CancelFunc // run → its jobs running here, by a number of their own
	tracked uint64                                   // the jobs numbered so far
}

func newCommandWorker(n int) (*commandWorker, error) {
	cw := &commandWorker{
		slots:   make(chan int, n),
		env:     os.Environ(),
		stopped: map[string]string{},
		running: map[string]map[uint64]context.CancelFunc{},
	}
	for i := range n {
		cw.slots <- i + 1
	}
	cw.host, _ = os.Hostname()
	var err error
	cw.devNull, err = os.Open(os.DevNull)
	return cw, err
}

// watchRuns follows the states of the runs, so that jobs of a stopped run
// do not start, and those of a run stopped now are killed.
func (cw *commandWorker) watchRuns(ctx context.Context, c *queue.Client, stderr io.Writer) {
	for ctx.Err() == nil {
		entries, wait, err := c.WatchMeta(ctx, runKey("*"))
		if err == nil {
			for e := range entries {
				var st runState
				if json.Unmarshal(e.Value, &st) != nil || st.Stopped == "" {
					continue
				}
				cw.stop(strings.TrimPrefix(e.Key, runKey("")), st.Stopped)
			}
			err = wait()
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

func (cw *commandWorker) stop(run, how string) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.stopped[run] = how
	if how == "now" {
		for _, cancel := range cw.running[run] {
			cancel()
		}
	}
}

// track registers a job of a run as running here, and returns its context,
// cancelled if the run is stopped now, and the function that unregisters
// it; or false if the run is stopped already.
func (cw *commandWorker) track(ctx context.Context, run string) (context.Context, func(), bool) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if cw.stopped[run] != "" {
		return nil, nil, false
	}
	ctx, cancel := context.WithCancel(ctx)
	cw.tracked++
	key := cw.tracked
	if cw.running[run] == nil {
		cw.running[run] = map[uint64]context.CancelFunc{}
	}
	cw.running[run][key] = cancel
	return ctx, func() {
		cw.mu.Lock()
		defer cw.mu.Unlock()
		cancel()
		delete(cw.running[run], key)
		if len(cw.running[run]) == 0 {
			delete(cw.running, run)
		}
	}, true
}

// handle runs a command job, with its retries and time limit, as herd run
// runs a job locally.
func (cw *commandWorker) handle(ctx context.Context, qj *queue.Job) ([]byte, error) {
	var cj commandJob
	if err := json.Unmarshal(qj.Payload, &cj); err != nil || cj.Line == "" || cj.Shell == "" {
		return nil, queue.Permanent(fmt.Errorf("not a command job of herd run (%v)", err))
	}
	jctx, untrack, ok := cw.track(ctx, cj.Run)
	if !ok {
		return json.Marshal(commandResult{Skipped: true})
	}
	defer untrack()
	slot := <-cw.slots
	defer func() { cw.slots <- slot }()

	res := commandResult{Host: cw.host, Slot: slot, Line: strings.ReplaceAll(cj.Line, slotText, strconv.Itoa(slot))}
	var stdout, stderr bytes.Buffer
	for attempt := 1; ; attempt++ {
		stdout.Reset()
		stderr.Reset()
		actx := jctx
		if cj.Timeout > 0 {
			var cancel context.CancelFunc
			actx, cancel = context.WithTimeout(jctx, cj.Timeout)
			defer cancel()
		}
		j := command.Job{
			Line:   res.Line,
			Shell:  cj.Shell,
			Env:    append(cw.env[:len(cw.env):len(cw.env)], "PARALLEL_SEQ="+strconv.Itoa(cj.Seq), "PARALLEL_JOBSLOT="+strconv.Itoa(slot)),
			Stdin:  cw.devNull,
			Stdout: &stdout,
			Stderr: &stderr,
		}
		if cj.Stdin != nil {
			j.Stdin = bytes.NewReader(cj.Stdin)
		}
		r := command.Run(actx, j)
		if ctx.Err() != nil {
			// This worker is stopping and killed the job: the queue gives
			// it to another worker, to run from the start.
			return nil, ctx.Err()
		}
		res.Start, res.Duration, res.Exit, res.Signal, res.Err = r.Start, r.Duration, r.Exit, r.Signal, ""
		if r.Err != nil {
			res.Err = r.Err.Error()
		}
		if !r.Failed() || attempt >= cj.Attempts || jctx.Err() != nil {
			break
		}
	}
	res.Stdout, res.Stderr = stdout.Bytes(), stderr.Bytes()
	return json.Marshal(res)
}
