package main

import (
	"context"
	"io"
	"os"

	"github.com/goherd/herd/queue"
	"github.com/spf13/cobra"
)

const queueHelp = `The durable queue that herd run --queue puts jobs on and herd work takes them from:
its server, its figures, its jobs (listed, inspected, retried, cancelled, purged), its
queues (paused, resumed), its workers (listed, drained), its schedules, and its dashboard.

Every command but serve connects to --queue URL (or $HERD_QUEUE); with neither, it
opens the queue stored on this machine in --dir, which no other process may be using.`

func newQueueCommand(ctx context.Context, sigs <-chan os.Signal) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "serve and look after the durable queue of herd run --queue",
		Long:  queueHelp,
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(
		newServeCommand(sigs),
		newUICommand(ctx, sigs),
		newStatsCommand(ctx),
		newLsCommand(ctx),
		newInspectCommand(ctx),
		newDeadCommand(ctx),
		newRetryCommand(ctx),
		newPurgeCommand(ctx),
		newPauseCommand(ctx),
		newResumeCommand(ctx),
		newLimitCommand(ctx),
		newCancelCommand(ctx),
		newWorkersCommand(ctx),
		newDrainCommand(ctx),
		newRepairCommand(ctx),
		newCronCommand(ctx),
	)
	return cmd
}

// onQueue makes cmd a command that opens the queue conn names (its flags
// added to cmd's), runs fn on it with the command's output and arguments,
// and closes it.
func onQueue(ctx context.Context, cmd *cobra.Command, conn *connFlags, fn func(c *queue.Client, out io.Writer, args []string) error) *cobra.Command {
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := conn.open(ctx, nil)
		if err != nil {
			return err
		}
		defer c.Close()
		return fn(c, cmd.OutOrStdout(), args)
	}
	f := cmd.Flags()
	f.SortFlags = false
	conn.add(f, true)
	return cmd
}

// onQueueJSON is onQueue for a command that prints JSON, for scripts, when
// --json is given: fn is told whether it was.
func onQueueJSON(ctx context.Context, cmd *cobra.Command, fn func(c *queue.Client, out io.Writer, args []string, asJSON bool) error) *cobra.Command {
	var o struct {
		conn connFlags
		json bool
	}
	cmd = onQueue(ctx, cmd, &o.conn, func(c *queue.Client, out io.Writer, args []string) error {
		return fn(c, out, args, o.json)
	})
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON, for scripts")
	return cmd
}
