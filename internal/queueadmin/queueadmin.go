// Package queueadmin does the work of herd queue's commands once cmd/herd
// has read their flags and opened the queue: it reads the queue or acts on
// it, and writes what it found as tables and job records for people, or as
// JSON for scripts.
package queueadmin

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/goherd/herd/internal/run/remote"
	"github.com/goherd/herd/queue"
)

// Stats are the queue's figures with the rate of each queue.
type Stats struct {
	Queues []QueueRates `json:"queues"`
	Dead   uint64       `json:"dead"`
	// Pending jobs wait for their parents (herd run --after, Options.After).
	Pending uint64 `json:"pending"`
	// Records are the jobs the queue has a record of, finished ones included.
	Records uint64 `json:"records"`
	// Limits are those of each limited queue (herd queue limit).
	Limits []queue.QueueLimits `json:"limits,omitempty"`
}

// QueueRates are a queue's figures at one priority, with the rate at which
// its jobs were settled.
type QueueRates struct {
	queue.QueueStats
	SettledPerSecond float64 `json:"settled_per_second"`
}

// ReadStats reads the queue's figures twice, interval apart, for the rate
// at which each queue's jobs are settled; once, with no rates, if interval
// is 0.
func ReadStats(ctx context.Context, c *queue.Client, interval time.Duration) (*Stats, error) {
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

func withRates(now, before *queue.Stats, elapsed time.Duration) *Stats {
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
	st := &Stats{Dead: now.Dead, Pending: now.Pending, Records: now.Records, Limits: now.Limits}
	for _, q := range now.Queues {
		r := QueueRates{QueueStats: q}
		if p, ok := prev[key{q.Queue, q.Priority}]; ok && elapsed > 0 {
			r.SettledPerSecond = float64(q.Settled()-min(p.Settled(), q.Settled())) / elapsed.Seconds()
		}
		st.Queues = append(st.Queues, r)
	}
	return st
}

// WriteStats shows the figures of each queue and priority, then the
// counts of the whole queue and the limits.
func WriteStats(w io.Writer, st *Stats, asJSON bool) error {
	if asJSON {
		return WriteJSON(w, st)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tPRIORITY\tWAITING\tIN FLIGHT\tSETTLED/S\tDELIVERED\tREDELIVERED\tIDLE FETCHES")
	for _, q := range st.Queues {
		name := q.Queue
		if q.Paused {
			name += " (paused)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%d\t%d\t%d\n", name, q.Priority, q.Waiting, q.InFlight,
			q.SettledPerSecond, q.Delivered, q.Redelivered, q.IdleFetches)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nwaiting for their parents: %d   dead jobs: %d   job records kept: %d\n", st.Pending, st.Dead, st.Records)
	for _, l := range st.Limits {
		fmt.Fprintf(w, "limits of queue %s: %s", l.Queue, l.Limits)
		if l.Concurrency > 0 {
			fmt.Fprintf(w, "; %d running", l.Running)
		}
		fmt.Fprintf(w, "; %d held by workers for a slot\n", l.Held)
	}
	return nil
}

// WriteWorkers shows each worker, its jobs running and how long each has
// run.
func WriteWorkers(w io.Writer, ws []queue.WorkerInfo, asJSON bool) error {
	if asJSON {
		return WriteJSON(w, orEmpty(ws))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tHOST\tQUEUES\tRUNNING\tDONE\tSEEN\tJOBS")
	for _, wk := range ws {
		id := wk.ID
		if wk.Draining {
			id += " (draining)"
		}
		var jobs []string
		for _, j := range wk.Running {
			jobs = append(jobs, fmt.Sprintf("%s (%s)", j.ID, time.Since(j.Since).Round(time.Second)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%s ago\t%s\n", id, wk.Host, strings.Join(wk.Queues, ","), len(wk.Running), wk.Concurrency,
			wk.Done, time.Since(wk.Seen).Round(time.Second), strings.Join(jobs, " "))
	}
	return tw.Flush()
}

// WriteLimits shows the limits of queues, by name.
func WriteLimits(w io.Writer, all map[string]queue.Limits, asJSON bool) error {
	if asJSON {
		return WriteJSON(w, all)
	}
	if len(all) == 0 {
		fmt.Fprintln(w, "no queue is limited")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tLIMITS")
	for _, name := range slices.Sorted(maps.Keys(all)) {
		fmt.Fprintf(tw, "%s\t%s\n", name, all[name])
	}
	return tw.Flush()
}

// WriteSchedules shows the cron schedules, each with its next tick and,
// for a schedule of herd's command jobs, its command line.
func WriteSchedules(w io.Writer, scheds []*queue.Schedule, asJSON bool) error {
	if asJSON {
		return WriteJSON(w, orEmpty(scheds))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSPEC\tQUEUE\tNEXT RUN\tCOMMAND")
	for _, s := range scheds {
		next, _ := s.NextTick(time.Now())
		line := s.Kind
		var cj remote.Job
		if s.Kind == remote.Kind && json.Unmarshal(s.Payload, &cj) == nil {
			line = cj.Line
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Spec, cmp.Or(s.Options.Queue, "default"), next.Local().Format(time.DateTime), line)
	}
	return tw.Flush()
}

// orEmpty returns list, or an empty list for nil: JSON's [] rather than
// null, for scripts.
func orEmpty[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}

// WriteJSON writes v as indented JSON.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteInfos lists jobs, a line each, or as a JSON array.
func WriteInfos(w io.Writer, infos []*queue.Info, asJSON bool) error {
	if asJSON {
		return WriteJSON(w, orEmpty(infos))
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

// WriteInfo shows a job whole. Payloads and results are shown as text if
// they are, and their size if not; a shell command's outcome as a person
// reads it.
func WriteInfo(w io.Writer, info *queue.Info, asJSON bool) error {
	if asJSON {
		return WriteJSON(w, info)
	}
	fmt.Fprintf(w, "id:        %s\nkind:      %s\nqueue:     %s (%s priority)\nstate:     %s\nattempts:  %d of %d\n",
		info.ID, info.Kind, info.Queue, info.Priority, info.State, info.Attempts, info.MaxAttempts)
	if !info.RunAt.IsZero() {
		fmt.Fprintf(w, "run at:    %s\n", info.RunAt.Local().Format(time.DateTime))
	}
	if info.Timeout > 0 {
		fmt.Fprintf(w, "timeout:   %v\n", time.Duration(info.Timeout))
	}
	fmt.Fprintf(w, "enqueued:  %s\nupdated:   %s\n", info.EnqueuedAt.Local().Format(time.DateTime), info.UpdatedAt.Local().Format(time.DateTime))
	if info.Worker != "" {
		fmt.Fprintf(w, "last try:  started %s on worker %s\n", info.StartedAt.Local().Format(time.DateTime), info.Worker)
	}
	fmt.Fprintf(w, "payload:   %s\n", printable(info.Payload))
	var res remote.Result
	switch {
	case info.Kind == remote.Kind && json.Unmarshal(info.Result, &res) == nil:
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
	return nil
}

// indented lays out a command's output under its label.
func indented(b []byte) string {
	return strings.ReplaceAll(strings.TrimSuffix(string(b), "\n"), "\n", "\n           ")
}

// printable is b if it is JSON or text, else its size.
func printable(b []byte) string {
	if json.Valid(b) || (len(b) > 0 && strings.ToValidUTF8(string(b), "") == string(b) && !strings.ContainsAny(string(b), "\x00")) {
		return string(b)
	}
	return fmt.Sprintf("(%d bytes)", len(b))
}

// Purge removes the jobs waiting in the queue of that name, or in every
// queue for "", and says how many; unless yes, it removes nothing, and says
// how many it would.
func Purge(ctx context.Context, c *queue.Client, w io.Writer, name string, yes bool) error {
	if !yes {
		// Count from the queue's figures: listing every job would read
		// each one's record.
		st, err := c.Stats(ctx)
		if err != nil {
			return err
		}
		var n uint64
		for _, q := range st.Queues {
			if name == "" || q.Queue == name {
				n += q.Waiting + uint64(q.InFlight)
			}
		}
		if n == 0 {
			fmt.Fprintln(w, "no jobs waiting: nothing to remove")
			return nil
		}
		return fmt.Errorf("this would remove %d jobs: say --yes to remove them", n)
	}
	n, err := c.Purge(ctx, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "removed %d jobs\n", n)
	return nil
}

// Repair puts back the jobs whose messages damaged files lost, and names
// each.
func Repair(ctx context.Context, c *queue.Client, w io.Writer) error {
	ids, err := c.Repair(ctx)
	for _, id := range ids {
		fmt.Fprintf(w, "%s: put back\n", id)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%d jobs put back\n", len(ids))
	return nil
}
