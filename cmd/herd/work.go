package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/goherd/herd/internal/run"
	"github.com/goherd/herd/internal/run/remote"
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

--http 127.0.0.1:9090 serves the worker's /metrics for Prometheus (jobs finished by
outcome, their durations and waits, and the queue's figures), /healthz and /readyz.

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
	filesHere       bool
	sshLogin        string
	sshHost         string
	http            httpFlags
}

func newWorkCommand(ctx context.Context, sigs <-chan os.Signal) *cobra.Command {
	var o workOptions
	cmd := &cobra.Command{
		Use:   "work --queue URL [-j N]",
		Short: "run the jobs of herd run --queue, N at a time",
		Long:  workHelp,
		Example: `  herd work --queue nats://queue-host:4222 -j 8
  HERD_QUEUE=nats://queue-host:4222 herd work --queue-name gpu -j 2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := run.ParseJobs(o.jobs, runtime.NumCPU())
			if err != nil {
				return err
			}
			if err := o.http.check(); err != nil {
				return err
			}
			if o.lease <= 0 || o.shutdownTimeout < 0 {
				return fmt.Errorf("--lease %v, --shutdown-timeout %v: want a positive lease and a timeout of 0 or more", o.lease, o.shutdownTimeout)
			}
			return o.work(ctx, n, sigs, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	o.conn.add(f, false)
	f.StringVarP(&o.jobs, "jobs", "j", "", "run `N` jobs at once: N, N% of the CPUs, +N or -N CPUs (default: the number of CPUs)")
	f.StringSliceVar(&o.queues, "queue-name", []string{"default"}, "take jobs from these named queues (`NAME`[,NAME...])")
	f.DurationVar(&o.lease, "lease", 30*time.Second, "give a job to another worker when this worker has not been heard of for this long (shared by a queue's workers)")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGINT or SIGTERM, let running jobs finish for this long before handing them back")
	// herd run -S starts the worker for ":" with it: the jobs' files
	// (--transfer, --return) are where it runs them already.
	f.BoolVar(&o.filesHere, "files-here", false, "the files of --transfer and --return are here: fetch, send back and remove none")
	f.MarkHidden("files-here")
	f.StringVar(&o.sshLogin, "sshlogin", "", "the login of herd run -S this worker serves, for $PARALLEL_SSHLOGIN")
	f.StringVar(&o.sshHost, "sshhost", "", "its host, for $PARALLEL_SSHHOST")
	f.MarkHidden("sshlogin")
	f.MarkHidden("sshhost")
	o.http.add(f, "this worker's /metrics, /healthz and /readyz", false)
	return cmd
}

// signals handles the signals herd work gets, as asynq and Sidekiq workers
// do: the first stops it taking jobs (stop) and gives the running ones
// --shutdown-timeout to finish, sending the signal's number on stopSig;
// the next hands the running jobs back to the queue. It returns once
// finished is closed.
func (o *workOptions) signals(sigs <-chan os.Signal, finished <-chan struct{}, stderr io.Writer, stopSig chan<- os.Signal, stop func(), w *queue.Worker) {
	run.Signals(sigs, finished, func(n int, s os.Signal) {
		if n == 1 {
			stopSig <- s
			fmt.Fprintf(stderr, "herd work: got %v: taking no more jobs; the running ones have %v to finish (signal again to hand them back now)\n", s, o.shutdownTimeout)
			stop()
			return
		}
		fmt.Fprintf(stderr, "herd work: got %v again: handing the running jobs back to the queue\n", s)
		w.Abort()
	})
}

// newWorkers makes the queue's worker of n slots and the handler of herd
// run's command jobs it runs.
func (o *workOptions) newWorkers(c *queue.Client, n int) (*queue.Worker, *remote.Worker, error) {
	w, err := c.NewWorker(queue.WorkerConfig{Queues: o.queues, Concurrency: n, Lease: o.lease, ShutdownTimeout: max(o.shutdownTimeout, time.Nanosecond)})
	if err != nil {
		return nil, nil, err
	}
	rw, err := remote.NewWorker(n)
	if err != nil {
		return nil, nil, err
	}
	rw.Files, rw.FilesHere, rw.SSHLogin, rw.SSHHost = c, o.filesHere, o.sshLogin, o.sshHost
	w.Handle(remote.Kind, rw.Handle)
	return w, rw, nil
}

// work runs the jobs of the queue on n slots until a signal stops it: it
// returns the exitStatus of that signal, or why it could not go on.
func (o *workOptions) work(ctx context.Context, n int, sigs <-chan os.Signal, stderr io.Writer) error {
	if o.conn.resolve(); o.conn.url == "" {
		return errors.New("no queue: give --queue URL or set HERD_QUEUE (start a queue server with herd queue serve)")
	}
	c, err := o.conn.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	w, rw, err := o.newWorkers(c, n)
	if err != nil {
		return err
	}
	defer rw.Close()
	if o.http.addr != "" {
		cfg := o.http.config(c, stderr)
		cfg.MetricsOnly = true
		stopHTTP, err := serveHTTP(cfg, "metrics", stderr)
		if err != nil {
			return err
		}
		defer stopHTTP()
	}

	// The worker hears of runs that are stopped.
	watchCtx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopWatch()
	wg.Go(func() { rw.WatchRuns(watchCtx, c, stderr) })

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	finished := make(chan struct{})
	defer close(finished)
	stopSig := make(chan os.Signal, 1)
	wg.Go(func() { o.signals(sigs, finished, stderr, stopSig, stop, w) })
	fmt.Fprintf(stderr, "herd work: running jobs of %s from %s, %d at a time\n", strings.Join(o.queues, ", "), o.conn.url, n)
	if err := w.Run(runCtx); err != nil {
		return err
	}
	select {
	case sig := <-stopSig:
		fmt.Fprintln(stderr, "herd work: stopped")
		return exitStatus(run.SignalStatus(sig))
	default:
		return nil
	}
}
