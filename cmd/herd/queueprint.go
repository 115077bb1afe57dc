package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/goherd/herd/internal/run/remote"
	"github.com/goherd/herd/queue"
)

// statsWithRates are the queue's figures with the rate of each queue.
type statsWithRates struct {
	Queues []queueRates `json:"queues"`
	Dead   uint64       `json:"dead"`
	// Pending jobs wait for their parents (herd run --after, Options.After).
	Pending uint64 `json:"pending"`
	// Records are the jobs the queue has a record of, finished ones included.
	Records uint64 `json:"records"`
	// Limits are those of each limited queue (herd queue limit).
	Limits []queue.QueueLimits `json:"limits,omitempty"`
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
	st := &statsWithRates{Dead: now.Dead, Pending: now.Pending, Records: now.Records, Limits: now.Limits}
	for _, q := range now.Queues {
		r := queueRates{QueueStats: q}
		if p, ok := prev[key{q.Queue, q.Priority}]; ok && elapsed > 0 {
			r.SettledPerSecond = float64(q.Settled()-min(p.Settled(), q.Settled())) / elapsed.Seconds()
		}
		st.Queues = append(st.Queues, r)
	}
	return st
}

// orEmpty returns list, or an empty list for nil: JSON's [] rather than
// null, for scripts.
func orEmpty[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeInfos lists jobs, a line each, or as a JSON array.
func writeInfos(w io.Writer, infos []*queue.Info, asJSON bool) error {
	if asJSON {
		return writeJSON(w, orEmpty(infos))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tQUEUE\tPRIORITY\tSTATE\tATTEMPTS\tENQUEUED\tLAST ERROR")
	for _, info := range infos {
		last := ""
		if n := len(info.Errors); n > 0 {
			last, _, _ = strings.Cut(info.Errors[n-1], "\n")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", info.ID, info.Kind, info.Queue, info.Priority,
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
		info.ID, info.Kind, info.Queue, info.Priority, info.State, info.Attempts, info.MaxAttempts)
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
