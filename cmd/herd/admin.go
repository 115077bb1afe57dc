package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/goherd/herd/internal/queueadmin"
	"github.com/goherd/herd/queue"
	"github.com/spf13/cobra"
)

func newStatsCommand(ctx context.Context) *cobra.Command {
	var interval time.Duration
	cmd := onQueueJSON(ctx, &cobra.Command{
		Use:   "stats",
		Short: "jobs waiting, in flight and dead, by queue and priority, and how fast they go",
		Long: `Show, for each named queue and priority: jobs waiting for a worker (scheduled ones
included), jobs in flight (running, or waiting for their next attempt), jobs settled
per second (done, or failed and handed back for a retry) over --interval, jobs handed
to workers so far, how many of those are handed out again, and idle fetches (workers
waiting for a job); then the number of jobs waiting for their parents (herd run --after),
of dead jobs, and of job records kept; then the limits of each limited queue (herd
queue limit), with how many of its jobs run under a --concurrency limit and how many
workers hold, waiting for a slot (the queue's other jobs not started wait in it).`,
		Args: cobra.NoArgs,
	}, func(c *queue.Client, out io.Writer, _ []string, asJSON bool) error {
		st, err := queueadmin.ReadStats(ctx, c, interval)
		if err != nil {
			return err
		}
		return queueadmin.WriteStats(out, st, asJSON)
	})
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "measure the rates over this long (0: no rates)")
	return cmd
}

func newLsCommand(ctx context.Context) *cobra.Command {
	var o struct {
		name  string
		limit int
	}
	cmd := onQueueJSON(ctx, &cobra.Command{
		Use:   "ls",
		Short: "the jobs still in the queue, oldest first",
		Args:  cobra.NoArgs,
	}, func(c *queue.Client, out io.Writer, _ []string, asJSON bool) error {
		infos, err := c.List(ctx, o.name, o.limit)
		if err != nil {
			return err
		}
		return queueadmin.WriteInfos(out, infos, asJSON)
	})
	cmd.Flags().StringVar(&o.name, "queue-name", "", "only the queue of this `NAME` (default: every queue)")
	cmd.Flags().IntVar(&o.limit, "limit", 100, "show at most `N` jobs")
	return cmd
}

func newInspectCommand(ctx context.Context) *cobra.Command {
	return onQueueJSON(ctx, &cobra.Command{
		Use:   "inspect ID",
		Short: "everything the queue knows of a job",
		Args:  cobra.ExactArgs(1),
	}, func(c *queue.Client, out io.Writer, args []string, asJSON bool) error {
		info, err := c.Info(ctx, args[0])
		if err != nil {
			return err
		}
		return queueadmin.WriteInfo(out, info, asJSON)
	})
}

func newDeadCommand(ctx context.Context) *cobra.Command {
	return onQueueJSON(ctx, &cobra.Command{
		Use:   "dead",
		Short: "the jobs that failed for good, with their errors",
		Args:  cobra.NoArgs,
	}, func(c *queue.Client, out io.Writer, _ []string, asJSON bool) error {
		infos, err := c.Dead(ctx)
		if err != nil {
			return err
		}
		return queueadmin.WriteInfos(out, infos, asJSON)
	})
}

func newWorkersCommand(ctx context.Context) *cobra.Command {
	return onQueueJSON(ctx, &cobra.Command{
		Use:   "workers",
		Short: "the workers running now, and the jobs each runs",
		Long: `Show each running worker (herd work, or a program's queue.Worker): its id, host,
queues, jobs running of its slots, jobs done, and the jobs it runs with how long
they have run. Workers say so every 5 seconds; a worker that died is listed for up
to 20 seconds.`,
		Args: cobra.NoArgs,
	}, func(c *queue.Client, out io.Writer, _ []string, asJSON bool) error {
		ws, err := c.Workers(ctx)
		if err != nil {
			return err
		}
		return queueadmin.WriteWorkers(out, ws, asJSON)
	})
}

func newDrainCommand(ctx context.Context) *cobra.Command {
	var resume bool
	cmd := eachArg(ctx, &cobra.Command{
		Use:   "drain WORKER...",
		Short: "stop workers taking new jobs (--resume: take them again)",
		Long: `Ask the workers with these ids (herd queue workers lists them) to take no new jobs;
the jobs they run go on. A worker acts on it within 5 seconds, and takes jobs again
after --resume, or when it restarts.`,
	}, "asked", func(c *queue.Client, ctx context.Context, id string) error { return c.Drain(ctx, id, !resume) })
	cmd.Flags().BoolVar(&resume, "resume", false, "let the workers take jobs again")
	return cmd
}

// eachArg makes a command that calls fn with each of its arguments (job
// ids, or queue names), saying what it did with each.
func eachArg(ctx context.Context, cmd *cobra.Command, did string, fn func(c *queue.Client, ctx context.Context, arg string) error) *cobra.Command {
	cmd.Args = cobra.MinimumNArgs(1)
	return onQueue(ctx, cmd, new(connFlags), func(c *queue.Client, out io.Writer, args []string) error {
		for _, arg := range args {
			if err := fn(c, ctx, arg); err != nil {
				return err
			}
			fmt.Fprintf(out, "%s: %s\n", arg, did)
		}
		return nil
	})
}

func newRetryCommand(ctx context.Context) *cobra.Command {
	return eachArg(ctx, &cobra.Command{
		Use:   "retry ID...",
		Short: "run finished jobs again: dead ones most often",
	}, "queued again", (*queue.Client).Retry)
}

func newCancelCommand(ctx context.Context) *cobra.Command {
	return eachArg(ctx, &cobra.Command{
		Use:   "cancel ID...",
		Short: "cancel jobs: waiting ones never run, running ones are stopped",
		Long: `Cancel the jobs with these ids (herd run --queue names its jobs RUN.N, N its job
number). A job waiting, scheduled or waiting to retry never runs; a running one is
stopped on the worker that runs it (a command's process group gets SIGTERM, then
SIGKILL). Their records say cancelled. Cancelling a finished job is an error.`,
	}, "cancelled", (*queue.Client).Cancel)
}

func newPauseCommand(ctx context.Context) *cobra.Command {
	return eachArg(ctx, &cobra.Command{
		Use:   "pause NAME...",
		Short: "stop the workers taking the jobs of named queues, until resume",
		Long: `Pause the named queues: their workers start none of their jobs until herd queue
resume; the jobs running finish, and jobs can still be added. A pause is kept by the
queue's server, across restarts of the server and of the workers; herd queue stats
marks the queue paused.`,
	}, "paused", (*queue.Client).Pause)
}

func newResumeCommand(ctx context.Context) *cobra.Command {
	return eachArg(ctx, &cobra.Command{
		Use:   "resume NAME...",
		Short: "let the workers take the jobs of paused queues again",
	}, "resumed", (*queue.Client).Resume)
}

func newPurgeCommand(ctx context.Context) *cobra.Command {
	var o struct {
		conn connFlags
		name string
		yes  bool
	}
	cmd := onQueue(ctx, &cobra.Command{
		Use:   "purge --yes [--queue-name NAME]",
		Short: "remove the jobs waiting in a queue, or in all",
		Long: `Remove the jobs waiting in the named queue (all queues if --queue-name is not given),
with their records. Running jobs finish. Nothing is removed without --yes.`,
		Args: cobra.NoArgs,
	}, &o.conn, func(c *queue.Client, out io.Writer, _ []string) error {
		return queueadmin.Purge(ctx, c, out, o.name, o.yes)
	})
	cmd.Flags().StringVar(&o.name, "queue-name", "", "only the queue of this `NAME` (default: every queue)")
	cmd.Flags().BoolVar(&o.yes, "yes", false, "really remove the jobs")
	return cmd
}

func newRepairCommand(ctx context.Context) *cobra.Command {
	return onQueue(ctx, &cobra.Command{
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
	}, new(connFlags), func(c *queue.Client, out io.Writer, _ []string) error {
		return queueadmin.Repair(ctx, c, out)
	})
}
