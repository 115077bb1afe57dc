package remote

import (
	"cmp"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/goherd/herd/internal/command"
	"github.com/goherd/herd/internal/run"
	"github.com/goherd/herd/queue"
)

// JobView is a command job of a run as the queue keeps it, decoded for a
// person to read: what the dashboard shows of it.
type JobView struct {
	ID       string        `json:"id"`
	Run      string        `json:"run,omitempty"` // the run's id
	Seq      int           `json:"seq"`
	Queue    string        `json:"queue"`
	State    queue.State   `json:"state"`
	Attempts int           `json:"attempts"`
	Line     string        `json:"line"` // the command line, as run once it ran
	Host     string        `json:"host,omitempty"`
	Worker   string        `json:"worker,omitempty"` // the id of the worker that ran its last attempt
	Start    time.Time     `json:"start,omitzero"`
	Duration time.Duration `json:"duration,omitempty"`
	Exit     int           `json:"exit"`
	Signal   int           `json:"signal,omitempty"`
	Skipped  bool          `json:"skipped,omitempty"` // never started: the run was stopped
	Err      string        `json:"error,omitempty"`
	Stdout   string        `json:"stdout,omitempty"`
	Stderr   string        `json:"stderr,omitempty"`
	Finished bool          `json:"finished"`
	Failed   bool          `json:"failed"` // finished, and not with exit status 0
}

// View decodes a command job's record.
func View(info *queue.Info) JobView {
	v := JobView{ID: info.ID, Queue: info.Queue, State: info.State, Attempts: info.Attempts, Worker: info.Worker, Finished: info.State.Finished()}
	var j Job
	if json.Unmarshal(info.Payload, &j) == nil {
		v.Run, v.Seq, v.Line = j.Run, j.Seq, run.Shown(j.Line, 0)
	}
	if v.Seq == 0 {
		_, seq, _ := strings.Cut(info.ID, ".")
		v.Seq, _ = strconv.Atoi(seq)
	}
	var res Result
	switch {
	case !v.Finished:
	case info.State == queue.Cancelled:
		v.Exit, v.Err, v.Start = -1, "cancelled", info.UpdatedAt
	case info.State == queue.Skipped:
		v.Exit, v.Err, v.Start = -1, lastError(info), info.UpdatedAt
	case json.Unmarshal(info.Result, &res) != nil:
		v.Exit, v.Err, v.Start = -1, cmp.Or(lastError(info), "the queue gave up on it"), info.UpdatedAt
	case res.Skipped:
		v.Skipped, v.Exit = true, -1
	default:
		v.Host, v.Start, v.Duration, v.Exit, v.Signal, v.Err = res.Host, res.Start, res.Duration, res.Exit, res.Signal, res.Err
		if res.Line != "" {
			v.Line = run.Shown(res.Line, res.Slot)
		}
		v.Stdout, v.Stderr = string(res.Stdout), string(res.Stderr)
	}
	v.Failed = v.Finished && (v.Exit != 0 || v.Signal != 0 || v.Skipped)
	return v
}

// Outcome says how a finished command job ended, as a person reads it:
// "exit 0", "exit 1", "killed by signal 9", "not started" or its error.
func (v JobView) Outcome() string {
	switch {
	case !v.Finished:
		return ""
	case v.Skipped:
		return "not started: the run was stopped"
	case v.Signal != 0:
		return "killed by signal " + strconv.Itoa(v.Signal)
	case v.Exit < 0 && v.Err != "":
		return v.Err
	}
	return "exit " + strconv.Itoa(v.Exit)
}

// lastError is the first line of a job's last error.
func lastError(info *queue.Info) string {
	if n := len(info.Errors); n > 0 {
		last, _, _ := strings.Cut(info.Errors[n-1], "\n")
		return last
	}
	return ""
}

// JoblogRow is the job's row in GNU parallel's job log; "" until it has
// finished, and for a job that never started.
func (v JobView) JoblogRow() string {
	if !v.Finished || v.Skipped {
		return ""
	}
	res := command.Result{Start: v.Start, Duration: v.Duration, Exit: v.Exit, Signal: v.Signal}
	return run.JoblogRow(v.Seq, v.Host, res, 0, int64(len(v.Stdout)), v.Line)
}

// Stop stops a run of herd run --queue as --halt does, from anywhere: with
// now false, its jobs not started yet do not start; with now true, its
// running jobs are killed too. The workers see it within moments.
func Stop(ctx context.Context, c *queue.Client, runID string, now bool) error {
	st, err := ReadState(ctx, c, runID)
	if err != nil {
		return err
	}
	how := "soon"
	if now {
		how = "now"
	}
	if st.Stopped == "now" || st.Stopped == how {
		return nil
	}
	st.Stopped = how
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return c.PutMeta(ctx, RunKey(runID), b)
}

// Settled reports whether every job of a run whose submitter is gone has
// finished: those it enqueued, and those of the batch it was sending, if
// the queue has them. finished holds the job numbers seen finished before;
// Settled reads the others' records only, and adds to it.
func Settled(ctx context.Context, c *queue.Client, runID string, finished map[int]bool) (bool, error) {
	st, err := ReadState(ctx, c, runID)
	if err != nil {
		return false, err
	}
	var ids []string
	var seqs []int
	for _, seq := range append(expand(st.Enqueued), st.Sending...) {
		if !finished[seq] {
			ids, seqs = append(ids, runID+"."+strconv.Itoa(seq)), append(seqs, seq)
		}
	}
	infos, err := c.Infos(ctx, ids)
	if err != nil {
		return false, err
	}
	settled := true
	for i, id := range ids {
		switch info := infos[id]; {
		case info == nil:
			// Never stored (a batch being sent), or lost: nothing to
			// wait for.
		case !info.State.Finished():
			settled = false
		default:
			finished[seqs[i]] = true
		}
	}
	return settled, nil
}
