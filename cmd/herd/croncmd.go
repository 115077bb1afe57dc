package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/goherd/herd/internal/queueadmin"
	"github.com/goherd/herd/internal/run/remote"
	"github.com/goherd/herd/queue"
	"github.com/spf13/cobra"
)

const cronHelp = `Run shell commands on a schedule, on the herd work processes of the queue.

A schedule lives in the queue, so it survives restarts. Every herd work serving its
queue enqueues its jobs, tick by tick, each tick's job with an id of its own
(cron.NAME.TIME): however many workers run, each tick runs once. A tick missed while
no worker ran is caught up once, when a worker starts: the latest one missed, not
every one. See a tick's output with herd queue inspect ID.

SPEC is a cron expression, with the seconds field optional ("*/5 * * * *",
"0 30 9 * * MON-FRI"), a descriptor (@hourly, @daily, @weekly, @monthly, @yearly) or
"@every 5m". Times are UTC unless SPEC starts with CRON_TZ=Zone/Name, or --tz is given.`

func newCronCommand(ctx context.Context) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cron",
		Short: "run shell commands on a schedule: herd queue cron add|ls|rm",
		Long:  cronHelp,
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newCronAddCommand(ctx), newCronLsCommand(ctx), newCronRmCommand(ctx))
	return cmd
}

func newCronAddCommand(ctx context.Context) *cobra.Command {
	var o struct {
		conn            connFlags
		name, shell, tz string
		timeout         time.Duration
	}
	cmd := onQueue(ctx, &cobra.Command{
		Use:   "add NAME SPEC COMMAND [ARGS...]",
		Short: "run a command on a schedule",
		Example: `  herd queue cron add nightly-backup '0 2 * * *' ./backup.sh /data
  herd queue cron add ping '@every 30s' curl -fsS https://example.org/health
  herd queue cron add standup --tz Europe/Paris '0 45 9 * * MON-FRI' ./remind.sh`,
		Args: cobra.MinimumNArgs(3),
	}, &o.conn, func(c *queue.Client, out io.Writer, args []string) error {
		spec := args[1]
		if o.tz != "" {
			spec = "CRON_TZ=" + o.tz + " " + spec
		}
		payload, err := json.Marshal(remote.Job{Run: "cron." + args[0], Line: strings.Join(args[2:], " "), Shell: o.shell, Attempts: 1, Timeout: o.timeout})
		if err != nil {
			return err
		}
		s := queue.Schedule{Name: args[0], Spec: spec, Kind: remote.Kind, Payload: payload, Options: queue.Options{Queue: o.name}}
		if err := c.AddSchedule(ctx, s); err != nil {
			return err
		}
		next, _ := s.NextTick(time.Now())
		fmt.Fprintf(out, "%s: added; first run at %s\n", args[0], next.Local().Format(time.DateTime))
		return nil
	})
	f := cmd.Flags()
	f.SetInterspersed(false) // the command's own options are not ours
	f.StringVar(&o.name, "queue-name", "default", "enqueue the jobs on the queue of this `NAME`")
	f.StringVar(&o.tz, "tz", "", "read SPEC in this time `ZONE` (such as Europe/Paris); default UTC")
	f.StringVar(&o.shell, "shell", "/bin/sh", "the shell that runs the command")
	f.DurationVar(&o.timeout, "timeout", 0, "kill a run after this long (0: no limit)")
	return cmd
}

func newCronLsCommand(ctx context.Context) *cobra.Command {
	return onQueueJSON(ctx, &cobra.Command{
		Use:   "ls",
		Short: "the schedules, with their next run",
		Args:  cobra.NoArgs,
	}, func(c *queue.Client, out io.Writer, _ []string, asJSON bool) error {
		scheds, err := c.Schedules(ctx)
		if err != nil {
			return err
		}
		return queueadmin.WriteSchedules(out, scheds, asJSON)
	})
}

func newCronRmCommand(ctx context.Context) *cobra.Command {
	return eachArg(ctx, &cobra.Command{
		Use:   "rm NAME...",
		Short: "remove schedules (the jobs they enqueued stay)",
	}, "removed", (*queue.Client).RemoveSchedule)
}
