package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/goherd/herd/internal/queueadmin"
	"github.com/goherd/herd/queue"
)

// limitOptions are herd queue limit's flags.
type limitOptions struct {
	conn                 connFlags
	concurrency, keyConc int
	rate                 string
	burst                int
	clear, json          bool
}

func newLimitCommand(ctx context.Context) *cobra.Command {
	var o limitOptions
	var cmd *cobra.Command
	cmd = onQueue(ctx, &cobra.Command{
		Use:   "limit [NAME [--concurrency N] [--rate R/s] [--burst B] [--key-concurrency N] | NAME --clear]",
		Short: "bound how many jobs of a queue run across every worker",
		Long: `Set the limits of the named queue, across every worker of the queue however many run:

  --concurrency N       at most N of its jobs run at once
  --rate R/s, R/m       at most R of its jobs start a second (or a minute), with up to
                        --burst B at once after a quiet spell
  --key-concurrency N   at most N jobs of one key run at once; a job's key is set when
                        it is added (herd run --queue URL --key STR, Options.Key in Go)

Limits are kept by the queue: they survive restarts of servers and workers, apply to
workers started later, and running workers follow a change within a second. A limit
lowered lets the jobs running finish. Flags not given keep their values; --clear
removes every limit of the queue. With no name, list the limited queues.`,
		Example: `  herd queue limit payments --concurrency 5
  herd queue limit mail --rate 50/s --burst 10
  herd queue limit reports --key-concurrency 2
  herd queue limit payments --clear`,
		Args: cobra.MaximumNArgs(1),
	}, &o.conn, func(c *queue.Client, out io.Writer, args []string) error {
		return o.limit(ctx, c, out, args, cmd.Flags().Changed)
	})
	f := cmd.Flags()
	f.IntVar(&o.concurrency, "concurrency", 0, "at most `N` jobs of the queue at once across every worker (0: no limit)")
	f.StringVar(&o.rate, "rate", "", "at most `R/s` (or R/m) starts of its jobs across every worker (0: no limit)")
	f.IntVar(&o.burst, "burst", 0, "with --rate: up to `B` starts at once after a quiet spell (default 1)")
	f.IntVar(&o.keyConc, "key-concurrency", 0, "at most `N` jobs of one key at once (0: no limit)")
	f.BoolVar(&o.clear, "clear", false, "remove every limit of the queue")
	f.BoolVar(&o.json, "json", false, "print JSON, for scripts")
	return cmd
}

// limit lists the limits, or sets those of the queue named in args.
func (o *limitOptions) limit(ctx context.Context, c *queue.Client, out io.Writer, args []string, set func(string) bool) error {
	all, err := c.Limits(ctx)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		if o.clear {
			return errors.New("--clear: name the queue")
		}
		return queueadmin.WriteLimits(out, all, o.json)
	}
	name, l := args[0], all[args[0]]
	changing := set("concurrency") || set("rate") || set("burst") || set("key-concurrency")
	switch {
	case o.clear && changing:
		return errors.New("--clear removes every limit: give it alone")
	case o.clear:
		l = queue.Limits{}
	case !changing:
		return queueadmin.WriteLimits(out, map[string]queue.Limits{name: l}, o.json)
	default:
		if l, err = o.apply(l, set); err != nil {
			return err
		}
	}
	if err := c.SetLimits(ctx, name, l); err != nil {
		return err
	}
	if o.json {
		return queueadmin.WriteJSON(out, l)
	}
	fmt.Fprintf(out, "queue %s: %s\n", name, l)
	return nil
}

// apply changes l as the flags given say; the others keep their values.
func (o *limitOptions) apply(l queue.Limits, set func(string) bool) (queue.Limits, error) {
	for _, f := range []struct {
		name string
		n    int
		to   *int
	}{{"concurrency", o.concurrency, &l.Concurrency}, {"key-concurrency", o.keyConc, &l.KeyConcurrency}, {"burst", o.burst, &l.Burst}} {
		if !set(f.name) {
			continue
		}
		if f.n < 0 {
			return l, fmt.Errorf("--%s %d: want 0 (no limit) or more", f.name, f.n)
		}
		*f.to = f.n
	}
	if set("rate") {
		r, err := queue.ParseRate(o.rate)
		if err != nil {
			return l, fmt.Errorf("--rate: %w", err)
		}
		l.Rate = r
	}
	switch {
	case l.Rate == 0 && set("burst") && l.Burst > 0:
		return l, errors.New("--burst goes with a --rate: give both")
	case l.Rate == 0:
		l.Burst = 0 // no rate, no burst
	}
	return l, nil
}
