package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/goherd/herd/internal/remote"
	"github.com/goherd/herd/queue"
	"github.com/spf13/cobra"
)

const queueHelp = `The durable queue that herd run --queue puts jobs on and herd work takes them from.

  herd queue serve     run the queue's server for workers and submitters on other machines
  herd queue stats     jobs waiting, in flight and dead, by queue and priority
  herd queue ls        the jobs still in the queue, oldest first
  herd queue inspect   everything the queue knows of a job
  herd queue dead      the jobs that failed for good
  herd queue retry     put a dead job back in its queue
  herd queue purge     remove the waiting jobs of a queue

Every command but serve connects to --queue URL (or $HERD_QUEUE); with neither, it
opens the queue stored on this machine in --dir, which no other process may be using.`

func newQueueCommand(ctx context.Context, sigs <-chan os.Signal, status *int) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "serve and look after the durable queue of herd run --queue",
		Long:  queueHelp,
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newServeCommand(sigs, status))
	for _, sub := range adminCommands(ctx, status) {
		cmd.AddCommand(sub)
	}
	cmd.AddCommand(newCronCommand(ctx, new(connFlags), status))
	return cmd
}

const serveHelp = `Run the queue's server: a NATS server with JetStream, storing jobs in --dir, for
herd work and herd run --queue to connect to from this machine or others.

By default it listens on 127.0.0.1 only, with no authentication. To serve other
machines, listen on an address they can reach, and protect it: anyone who can put
jobs on the queue can run commands on its workers. Give --user and --password (or
--token), and --tls-cert and --tls-key for TLS; the password and token can also come
from $HERD_QUEUE_PASSWORD and $HERD_QUEUE_TOKEN, out of sight of ps.

Every write is flushed to disk before it is acknowledged (--sync-interval 0), so an
acknowledged job survives a power cut; a longer interval is faster and can lose the
jobs of that interval in an operating-system crash (not in a crash of herd alone).

Several servers form a cluster with --cluster-name, --cluster-listen and --routes
(every server's cluster address), and --replicas 3 keeps each job on three of them, so
that the queue goes on when one is lost. Give the clients every server's URL,
comma-separated.

It runs until SIGINT or SIGTERM, then stops cleanly.`

func newServeCommand(sigs <-chan os.Signal, status *int) *cobra.Command {
	var cfg queue.ServerConfig
	var tlsCert, tlsKey, routes, maxStore string
	cmd := &cobra.Command{
		Use:   "serve [--listen HOST:PORT] [--dir FOLDER]",
		Short: "run the queue's server for workers and submitters on other machines",
		Long:  serveHelp,
		Example: `  herd queue serve                                   # 127.0.0.1:4222, this machine only
  HERD_QUEUE_PASSWORD=s3cret herd queue serve --listen 0.0.0.0:4222 --user herd \
      --tls-cert server.pem --tls-key server-key.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Password == "" {
				cfg.Password = os.Getenv("HERD_QUEUE_PASSWORD")
			}
			if cfg.Token == "" {
				cfg.Token = os.Getenv("HERD_QUEUE_TOKEN")
			}
			if (cfg.User == "") != (cfg.Password == "") {
				return errors.New("--user and --password go together")
			}
			if cfg.User != "" && cfg.Token != "" {
				return errors.New("--token and --user: choose one")
			}
			if (tlsCert == "") != (tlsKey == "") {
				return errors.New("--tls-cert and --tls-key go together")
			}
			if tlsCert != "" {
				cert, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
				if err != nil {
					return fmt.Errorf("--tls-cert: %w", err)
				}
				cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			}
			if routes != "" {
				cfg.Cluster.Routes = strings.Split(routes, ",")
			}
			if cfg.Cluster.Name == "" && (cfg.Cluster.Listen != "" || routes != "") {
				return errors.New("--cluster-listen and --routes need --cluster-name")
			}
			if cfg.Cluster.Name != "" && cfg.Cluster.Listen == "" {
				return errors.New("--cluster-name needs --cluster-listen HOST:PORT")
			}
			if cfg.Replicas < 0 || (cfg.Replicas > 1 && cfg.Cluster.Name == "") {
				return fmt.Errorf("--replicas %d: want 1, or up to the number of servers with --cluster-name", cfg.Replicas)
			}
			if maxStore != "" {
				var err error
				if cfg.MaxStore, err = parseSize("--max-store", maxStore); err != nil {
					return err
				}
			}
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			*status = serve(cfg, sigs, cmd.OutOrStdout(), cmd.ErrOrStderr())
			return nil
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:4222", "accept clients on `HOST:PORT` (port 0: any free port)")
	f.StringVar(&cfg.Dir, "dir", "", "store the jobs in `FOLDER` (default "+defaultDirText()+")")
	f.DurationVar(&cfg.SyncInterval, "sync-interval", 0, "flush writes to disk this often (like 1s); 0 means before acknowledging each")
	f.StringVar(&maxStore, "max-store", "", "store at most `SIZE` on disk, like 20G (default: 3/4 of the disk's free space)")
	f.StringVar(&cfg.Name, "name", "", "the server's name, different for each server of a cluster (default herd)")
	f.StringVar(&cfg.User, "user", "", "clients must log in as `NAME` with --password")
	f.StringVar(&cfg.Password, "password", "", "the clients' `PASSWORD` (default $HERD_QUEUE_PASSWORD)")
	f.StringVar(&cfg.Token, "token", "", "clients must present this `TOKEN` (default $HERD_QUEUE_TOKEN)")
	f.StringVar(&tlsCert, "tls-cert", "", "serve TLS with this certificate `FILE` (PEM)")
	f.StringVar(&tlsKey, "tls-key", "", "the certificate's key `FILE` (PEM)")
	f.StringVar(&cfg.Cluster.Name, "cluster-name", "", "join a cluster of this `NAME`")
	f.StringVar(&cfg.Cluster.Listen, "cluster-listen", "", "listen for the cluster's other servers on `HOST:PORT`")
	f.StringVar(&routes, "routes", "", "the cluster's servers: nats-route://HOST:PORT[,...]")
	f.IntVar(&cfg.Replicas, "replicas", 0, "keep each job on `N` servers of the cluster (default: as the queue is, or 1)")
	return cmd
}

func serve(cfg queue.ServerConfig, sigs <-chan os.Signal, stdout, stderr io.Writer) int {
	srv, err := queue.Serve(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "herd queue serve: %v\n", err)
		return exitError
	}
	durability := "every write flushed to disk"
	if cfg.SyncInterval > 0 {
		durability = fmt.Sprintf("writes flushed to disk every %v", cfg.SyncInterval)
	}
	url := srv.URL()
	fmt.Fprintf(stdout, "herd queue: serving %s (jobs in %s, %s)\n", url, srv.Dir(), durability)
	fmt.Fprintf(stdout, "  workers:     herd work --queue %s\n", url)
	fmt.Fprintf(stdout, "  submitters:  herd run --queue %s COMMAND ::: INPUTS\n", url)
	s := <-sigs
	fmt.Fprintf(stderr, "herd queue serve: got %v: stopping\n", s)
	srv.Close()
	return 0
}

// adminOptions are the options of the commands that look after a queue.
type adminOptions struct {
	conn     connFlags
	json     bool
	name     string
	limit    int
	interval time.Duration
	yes      bool
}

// onQueue returns a command's RunE that opens the queue conn names, runs fn
// on it with the command's output and arguments, and closes it.
func onQueue(ctx context.Context, conn *connFlags, status *int, fn func(c *queue.Client, out io.Writer, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := conn.open(ctx, nil)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := fn(c, cmd.OutOrStdout(), args); err != nil {
			return err
		}
		*status = 0
		return nil
	}
}

func adminCommands(ctx context.Context, status *int) []*cobra.Command {
	var o adminOptions
	do := func(fn func(c *queue.Client, out io.Writer, args []string) error) func(*cobra.Command, []string) error {
		return onQueue(ctx, &o.conn, status, fn)
	}
	stats := &cobra.Command{
		Use:   "stats",
		Short: "jobs waiting, in flight and dead, by queue and priority, and how fast they go",
		Long: `Show, for each named queue and priority: jobs waiting for a worker (scheduled ones
included), jobs in flight (running, or waiting for their next attempt), jobs settled
per second (done, or failed and handed back for a retry) over --interval, jobs handed
to workers so far, how many of those are handed out again, and idle fetches (workers
waiting for a job); then the number of dead jobs, and of job records kept.`,
		Args: cobra.NoArgs,
		RunE: do(func(c *queue.Client, out io.Writer, args []string) error {
			st, err := queueStats(ctx, c, o.interval)
			if err != nil {
				return err
			}
			if o.json {
				return writeJSON(out, st)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "QUEUE\tPRIORITY\tWAITING\tIN FLIGHT\tSETTLED/S\tDELIVERED\tREDELIVERED\tIDLE FETCHES")
			for _, q := range st.Queues {
				name := q.Queue
				if q.Paused {
					name += " (paused)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%d\t%d\t%d\n", name, priorityName(q.Priority), q.Waiting, q.InFlight,
					q.SettledPerSecond, q.Delivered, q.Redelivered, q.IdleFetches)
			}
			tw.Flush()
			fmt.Fprintf(out, "\ndead jobs: %d   job records kept: %d\n", st.Dead, st.Records)
			return nil
		}),
	}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "the jobs still in the queue, oldest first",
		Args:  cobra.NoArgs,
		RunE: do(func(c *queue.Client, out io.Writer, args []string) error {
			infos, err := c.List(ctx, o.name, o.limit)
			if err != nil {
				return err
			}
			return writeInfos(out, infos, o.json)
		}),
	}
	inspect := &cobra.Command{
		Use:   "inspect ID",
		Short: "everything the queue knows of a job",
		Args:  cobra.ExactArgs(1),
		RunE: do(func(c *queue.Client, out io.Writer, args []string) error {
			info, err := c.Info(ctx, args[0])
			if err != nil {
				return err
			}
			if o.json {
				return writeJSON(out, info)
			}
			writeInfo(out, info)
			return nil
		}),
	}
	dead := &cobra.Command{
		Use:   "dead",
		Short: "the jobs that failed for good, with their errors",
		Args:  cobra.NoArgs,
		RunE: do(func(c *queue.Client, out io.Writer, args []string) error {
			infos, err := c.Dead(ctx)
			if err != nil {
				return err
			}
			return writeInfos(out, infos, o.json)
		}),
	}
	retry := &cobra.Command{
		Use:   "retry ID...",
		Short: "put dead jobs back in their queue",
		Args:  cobra.MinimumNArgs(1),
		RunE: do(func(c *queue.Client, out io.Writer, args []string) error {
			for _, id := range args {
				if err := c.Retry(ctx, id); err != nil {
					return err
				}
				fmt.Fprintf(out, "%s: queued again\n", id)
			}
			return nil
		}),
	}
	purge := &cobra.Command{
		Use:   "purge --yes [--queue-name NAME]",
		Short: "remove the jobs waiting in a queue, or in all",
		Long: `Remove the jobs waiting in the named queue (all queues if --queue-name is not given),
with their records. Running jobs finish. Nothing is removed without --yes.`,
		Args: cobra.NoArgs,
		RunE: do(func(c *queue.Client, out io.Writer, args []string) error {
			if !o.yes {
				// Count from the queue's figures: listing every job would
				// read each one's record.
				st, err := c.Stats(ctx)
				if err != nil {
					return err
				}
				var n uint64
				for _, q := range st.Queues {
					if o.name == "" || q.Queue == o.name {
						n += q.Waiting + uint64(q.InFlight)
					}
				}
				if n == 0 {
					fmt.Fprintln(out, "no jobs waiting: nothing to remove")
					return nil
				}
				return fmt.Errorf("this would remove %d jobs: say --yes to remove them", n)
			}
			n, err := c.Purge(ctx, o.name)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "removed %d jobs\n", n)
			return nil
		}),
	}
	pauseCmd := func(use, short, long, done string, fn func(*queue.Client, context.Context, string) error) *cobra.Command {
		return &cobra.Command{
			Use:   use + " NAME...",
			Short: short,
			Long:  long,
			Args:  cobra.MinimumNArgs(1),
			RunE: do(func(c *queue.Client, out io.Writer, args []string) error {
				for _, name := range args {
					if err := fn(c, ctx, name); err != nil {
						return err
					}
					fmt.Fprintf(out, "%s: %s\n", name, done)
				}
				return nil
			}),
		}
	}
	pause := pauseCmd("pause", "stop the workers taking the jobs of named queues, until resume",
		`Pause the named queues: their workers start none of their jobs until herd queue
resume; the jobs running finish, and jobs can still be added. A pause is kept by the
queue's server, across restarts of the server and of the workers; herd queue stats
marks the queue paused.`, "paused", (*queue.Client).Pause)
	resume := pauseCmd("resume", "let the workers take the jobs of paused queues again", "",
		"resumed", (*queue.Client).Resume)
	cancel := &cobra.Command{
		Use:   "cancel ID...",
		Short: "cancel jobs: waiting ones never run, running ones are stopped",
		Long: `Cancel the jobs with these ids (herd run --queue names its jobs RUN.N, N its job
number). A job waiting, scheduled or waiting to retry never runs; a running one is
stopped on the worker that runs it (a command's process group gets SIGTERM, then
SIGKILL). Their records say cancelled. Cancelling a finished job is an error.`,
		Args: cobra.MinimumNArgs(1),
		RunE: do(func(c *queue.Client, out io.Writer, args []string) error {
			for _, id := range args {
				if err := c.Cancel(ctx, id); err != nil {
					return err
				}
				fmt.Fprintf(out, "%s: cancelled\n", id)
			}
			return nil
		}),
	}
	repair := &cobra.Command{
		Use:   "repair",
		Short: "put back the jobs whose messages damaged files lost, from their records",
		Long: `Look for jobs that damaged files left with a record and no message to run them (jobs
that had started, or were retried by hand), and put each back in its queue from its
record, to run now, with its attempts and errors kept. A job no worker had taken has
no record: if its message is lost, nothing is left to rebuild it from.

The embedded server, and herd queue serve, do this when they start if the server found
the queue's files damaged or not closed cleanly; run it by hand for a queue on another
NATS server after its files were damaged. It reads every record.`,
		Args: cobra.NoArgs,
		RunE: do(func(c *queue.Client, out io.Writer, args []string) error {
			ids, err := c.Repair(ctx)
			for _, id := range ids {
				fmt.Fprintf(out, "%s: put back\n", id)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%d jobs put back\n", len(ids))
			return nil
		}),
	}
	cmds := []*cobra.Command{stats, ls, inspect, dead, retry, purge, pause, resume, cancel, repair}
	for _, cmd := range cmds {
		f := cmd.Flags()
		f.SortFlags = false
		o.conn.add(f, true)
		switch cmd {
		case stats, ls, inspect, dead:
			f.BoolVar(&o.json, "json", false, "print JSON, for scripts")
		}
		switch cmd {
		case ls, purge:
			f.StringVar(&o.name, "queue-name", "", "only the queue of this `NAME` (default: every queue)")
		}
		if cmd == ls {
			f.IntVar(&o.limit, "limit", 100, "show at most `N` jobs")
		}
		if cmd == stats {
			f.DurationVar(&o.interval, "interval", time.Second, "measure the rates over this long (0: no rates)")
		}
		if cmd == purge {
			f.BoolVar(&o.yes, "yes", false, "really remove the jobs")
		}
	}
	return cmds
}

// statsWithRates are the queue's figures with the rate of each queue.
type statsWithRates struct {
	Queues []queueRates `json:"queues"`
	Dead   uint64       `json:"dead"`
	// Records are the jobs the queue has a record of, finished ones included.
	Records uint64 `json:"records"`
}

type queueRates struct {
	queue.QueueStats
	SettledPerSecond float64 `json:"settled_per_second"`
}

// queueStats reads the queue's figures twice, interval apart, for the
// rate at which each queue's jobs are settled.
func queueStats(ctx context.Context, c *queue.Client, interval time.Duration) (*statsWithRates, error) {
	first, err := c.Stats(ctx)
	if err != nil || interval <= 0 {
		if err != nil {
			return nil, err
		}
		return withRates(first, nil, 0), nil
	}
	start := time.Now()
	select {
	case <-time.After(interval):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	second, err := c.Stats(ctx)
	if err != nil {
		return nil, err
	}
	return withRates(second, first, time.Since(start)), nil
}

func withRates(now, before *queue.Stats, elapsed time.Duration) *statsWithRates {
	settled := func(q queue.QueueStats) float64 { return float64(q.Delivered) - float64(q.InFlight) }
	type key struct {
		name string
		prio queue.Priority
	}
	prev := map[key]queue.QueueStats{}
	if before != nil {
		for _, q := range before.Queues {
			prev[key{q.Queue, q.Priority}] = q
		}
	}
	st := &statsWithRates{Dead: now.Dead, Records: now.Records}
	for _, q := range now.Queues {
		r := queueRates{QueueStats: q}
		if p, ok := prev[key{q.Queue, q.Priority}]; ok && elapsed > 0 {
			r.SettledPerSecond = max(settled(q)-settled(p), 0) / elapsed.Seconds()
		}
		st.Queues = append(st.Queues, r)
	}
	return st
}

func priorityName(p queue.Priority) string {
	switch p {
	case queue.High:
		return "high"
	case queue.Low:
		return "low"
	}
	return "default"
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeInfos lists jobs, a line each, or as a JSON array.
func writeInfos(w io.Writer, infos []*queue.Info, asJSON bool) error {
	if asJSON {
		if infos == nil {
			infos = []*queue.Info{}
		}
		return writeJSON(w, infos)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tQUEUE\tPRIORITY\tSTATE\tATTEMPTS\tENQUEUED\tLAST ERROR")
	for _, info := range infos {
		last := ""
		if n := len(info.Errors); n > 0 {
			last, _, _ = strings.Cut(info.Errors[n-1], "\n")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", info.ID, info.Kind, info.Queue, priorityName(info.Priority),
			info.State, info.Attempts, info.MaxAttempts, info.EnqueuedAt.Local().Format(time.DateTime), last)
	}
	return tw.Flush()
}

// writeInfo shows a job whole. Payloads and results are shown as text if
// they are, and their size if not.
// indented lays out a command's output under its label.
func indented(b []byte) string {
	return strings.ReplaceAll(strings.TrimSuffix(string(b), "\n"), "\n", "\n           ")
}

func writeInfo(w io.Writer, info *queue.Info) {
	fmt.Fprintf(w, "id:        %s\nkind:      %s\nqueue:     %s (%s priority)\nstate:     %s\nattempts:  %d of %d\n",
		info.ID, info.Kind, info.Queue, priorityName(info.Priority), info.State, info.Attempts, info.MaxAttempts)
	if !info.RunAt.IsZero() {
		fmt.Fprintf(w, "run at:    %s\n", info.RunAt.Local().Format(time.DateTime))
	}
	if info.Timeout > 0 {
		fmt.Fprintf(w, "timeout:   %v\n", time.Duration(info.Timeout))
	}
	fmt.Fprintf(w, "enqueued:  %s\nupdated:   %s\n", info.EnqueuedAt.Local().Format(time.DateTime), info.UpdatedAt.Local().Format(time.DateTime))
	fmt.Fprintf(w, "payload:   %s\n", printable(info.Payload))
	var res remote.Result
	switch {
	case info.Kind == remote.Kind && json.Unmarshal(info.Result, &res) == nil:
		// A shell command's outcome, as a person reads it.
		fmt.Fprintf(w, "command:   %s\nhost:      %s\nexit:      %d\n", res.Line, res.Host, res.Exit)
		if res.Signal != 0 {
			fmt.Fprintf(w, "signal:    %d\n", res.Signal)
		}
		fmt.Fprintf(w, "stdout:    %s\nstderr:    %s\n", indented(res.Stdout), indented(res.Stderr))
	case info.Result != nil:
		fmt.Fprintf(w, "result:    %s\n", printable(info.Result))
	}
	for _, e := range info.Errors {
		fmt.Fprintf(w, "error:     %s\n", strings.ReplaceAll(e, "\n", "\n           "))
	}
}

func printable(b []byte) string {
	if json.Valid(b) || (len(b) > 0 && strings.ToValidUTF8(string(b), "") == string(b) && !strings.ContainsAny(string(b), "\x00")) {
		return string(b)
	}
	return fmt.Sprintf("(%d bytes)", len(b))
}
