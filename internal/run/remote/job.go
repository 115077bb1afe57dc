// Package remote runs herd run's jobs on a queue: an executor of
// internal/run that enqueues them and follows their records, or attaches
// to a run enqueued earlier, and the handler with which herd work runs
// them.
package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/goherd/herd/internal/command"
)

// Kind is the kind of the queue's jobs that are shell commands, as
// herd run --queue enqueues them and herd work runs them.
const Kind = "herd.command"

// Job is the payload of a command job: what herd work needs to run
// it exactly as herd run would have run it locally.
type Job struct {
	Run      string         `json:"run"`  // the run's id
	Seq      int            `json:"seq"`  // the job's number in the run
	Args     []string       `json:"args"` // its inputs, for --tag
	Line     string         `json:"line"` // expanded; the slot marker stands for {%}
	Shell    string         `json:"shell"`
	Attempts int            `json:"attempts"`          // --retries
	Timeout  time.Duration  `json:"timeout,omitempty"` // per attempt
	TermSeq  []command.Term `json:"termseq,omitempty"` // how it is killed; none means the default
	Stdin    []byte         `json:"stdin,omitempty"`   // --pipe's block
	Nice     int            `json:"nice,omitempty"`    // --nice
	Pass     string         `json:"pass,omitempty"`    // --cat or --fifo: how Stdin is given
	Env      []string       `json:"env,omitempty"`     // --env: NAME=value, set over the worker's
	Workdir  string         `json:"workdir,omitempty"` // --workdir, as run.Workdir.Name names it
	// Files that go with the job, by the paths it names them with, which
	// the queue holds under FileKey names: Transfer to fetch before it
	// runs (--transfer), Base once per run on each host (--basefile),
	// Return to send back after (--return); Cleanup removes them all from
	// the host after.
	Transfer []string `json:"transfer,omitempty"`
	Base     []string `json:"base,omitempty"`
	Return   []string `json:"return,omitempty"`
	Cleanup  bool     `json:"cleanup,omitempty"`
}

// FileKey is the name under which the queue holds a file of a job: the
// i-th of a kind ("t" transferred, "r" returned) of job seq of a run, or
// with seq 0 the run's i-th base file.
func FileKey(run string, seq int, kind string, i int) string {
	if seq == 0 {
		return fmt.Sprintf("%s.base%d", run, i)
	}
	return fmt.Sprintf("%s.%d.%s%d", run, seq, kind, i)
}

// Result is the result of a command job.
type Result struct {
	Skipped  bool          `json:"skipped,omitempty"` // never started: the run was stopped
	Host     string        `json:"host,omitempty"`
	Line     string        `json:"line,omitempty"` // as run, with its slot
	Slot     int           `json:"slot,omitempty"`
	Start    time.Time     `json:"start,omitzero"`
	Duration time.Duration `json:"duration,omitempty"`
	Exit     int           `json:"exit"`
	Signal   int           `json:"signal,omitempty"`
	Killed   bool          `json:"killed,omitempty"` // the worker killed it (its time limit, the run stopped now)
	Err      string        `json:"error,omitempty"`
	Stdout   []byte        `json:"stdout,omitempty"`
	Stderr   []byte        `json:"stderr,omitempty"`
	Returned []int         `json:"returned,omitempty"` // the files of Job.Return sent back, by index
}

func (r *Result) result() command.Result {
	res := command.Result{Start: r.Start, Duration: r.Duration, Exit: r.Exit, Signal: r.Signal, Killed: r.Killed}
	if r.Err != "" {
		res.Err = errors.New(r.Err)
	}
	return res
}

// State is what the queue keeps of a run of herd run --queue, as meta
// under RunKey: how many jobs it has, and whether it was stopped.
type State struct {
	Jobs       int       `json:"jobs"`                 // enqueued so far
	Enqueueing bool      `json:"enqueueing,omitempty"` // more to come
	Stopped    string    `json:"stopped,omitempty"`    // "": running; "soon": start no more jobs; "now": kill them too
	Command    string    `json:"command,omitempty"`
	Started    time.Time `json:"started"`

	// Sending are the numbers of the jobs being enqueued now, written
	// before they are: if the submitter dies meanwhile, some of them may
	// be on the queue, uncounted in Jobs.
	Sending []int `json:"sending,omitempty"`
	// Enqueued are the numbers of the jobs enqueued, as ranges from-to:
	// one range, unless --resume left some out.
	Enqueued [][2]int `json:"enqueued,omitempty"`
}

// addSeqs adds job numbers, given in increasing order, to ranges.
func addSeqs(ranges [][2]int, seqs []int) [][2]int {
	for _, seq := range seqs {
		if n := len(ranges); n > 0 && ranges[n-1][1] == seq-1 {
			ranges[n-1][1] = seq
		} else {
			ranges = append(ranges, [2]int{seq, seq})
		}
	}
	return ranges
}

// expand lists the job numbers in ranges.
func expand(ranges [][2]int) []int {
	var out []int
	for _, r := range ranges {
		for seq := r[0]; seq <= r[1]; seq++ {
			out = append(out, seq)
		}
	}
	return out
}

// RunKey is the meta key of a run's state. Its jobs' ids are run.seq.
func RunKey(run string) string { return "runs." + run }

// ReadState reads a run's state from the queue: an error wrapping
// queue.ErrNotFound if there is no such run.
func ReadState(ctx context.Context, c interface {
	Meta(ctx context.Context, key string) ([]byte, error)
}, runID string) (State, error) {
	var st State
	b, err := c.Meta(ctx, RunKey(runID))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("run %s: %w", runID, err)
	}
	return st, nil
}
