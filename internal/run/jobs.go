package run

import (
	"cmp"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"strings"

	"github.com/goherd/herd/internal/command"
	"github.com/goherd/herd/internal/input"
)

// Jobs returns the jobs of a run, in order, and their number if it is
// known up front (-1 if not): the inputs' or --pipe's, less those that
// --resume or --resume-failed skip, shuffled by --shuf; or the failed jobs
// of the job log with --retry-failed. With count set, it reads them all
// first, for their number. cleanup, called once every job has ended,
// closes the input files, and reports input that was not read.
func Jobs(cfg *Config, stdin io.Reader, count bool) (jobs iter.Seq2[Job, error], total int, cleanup func() error, err error) {
	cleanup = func() error { return nil }
	if cfg.Template == nil {
		return sliceJobs(nil), 0, cleanup, nil // the jobs are the executor's
	}
	if cfg.RetryFailed {
		rows, order, err := ReadJoblog(cfg.Joblog)
		if err != nil {
			return nil, 0, cleanup, err
		}
		var list []Job
		for _, seq := range order {
			if r := rows[seq]; r.Failed() {
				list = append(list, Job{Seq: seq, Line: r.Command})
			}
		}
		return sliceJobs(list), len(list), cleanup, nil
	}

	switch {
	case cfg.Pipe != nil && cfg.Pipe.RoundRobin:
		jobs, cleanup = cfg.roundRobin(stdin)
	case cfg.Pipe != nil:
		jobs = cfg.pipeJobs(stdin)
	default:
		in := cfg.Input
		in.Stdin = stdin
		rd, err := input.Open(in)
		if err != nil {
			return nil, 0, cleanup, err
		}
		cleanup = func() error { rd.Close(); return nil }
		if cfg, err = cfg.named(rd); err != nil {
			return nil, 0, cleanup, err
		}
		args := cfg.inputs(rd)
		if cfg.Template.NeedsTotal() {
			// {##} and {0#} need the number of jobs before the first.
			var list [][]string
			for vals, err := range args {
				if err != nil {
					return nil, 0, cleanup, err
				}
				list = append(list, vals)
			}
			args = func(yield func([]string, error) bool) {
				for _, vals := range list {
					if !yield(vals, nil) {
						return
					}
				}
			}
			c := *cfg
			c.Template = cfg.Template.WithTotal(len(list))
			cfg = &c
		}
		jobs = func(yield func(Job, error) bool) {
			seq := 0
			for vals, err := range args {
				if err != nil {
					yield(Job{}, err)
					return
				}
				seq++
				j := Job{Seq: seq, Args: vals}
				if cfg.Multi == "" { // multi expands the line of each group of inputs
					j.Line = cfg.Template.Expand(vals, seq, slotMarker, cfg.Raw)
				}
				if !yield(j, nil) {
					return
				}
			}
		}
	}

	if cfg.Multi != "" {
		if jobs, err = cfg.multi(jobs); err != nil {
			return nil, 0, cleanup, err
		}
	}
	if cfg.Resume || cfg.ResumeFailed {
		rows, _, err := ReadJoblog(cfg.Joblog)
		if err != nil {
			return nil, 0, cleanup, err
		}
		if jobs, err = cfg.skipLogged(jobs, rows); err != nil {
			return nil, 0, cleanup, err
		}
	}
	if !cfg.Shuf && !count {
		return jobs, -1, cleanup, nil
	}
	var list []Job
	for j, err := range jobs {
		if err != nil {
			return nil, 0, cleanup, err
		}
		list = append(list, j)
	}
	if cfg.Shuf {
		rand.Shuffle(len(list), func(a, b int) { list[a], list[b] = list[b], list[a] })
	}
	return sliceJobs(list), len(list), cleanup, nil
}

// named returns cfg with its templates given the names of the inputs'
// header, with --header.
func (cfg *Config) named(rd *input.Reader) (*Config, error) {
	names, err := rd.Header()
	if err != nil || len(names) == 0 {
		return cfg, err
	}
	if cfg.Results != nil {
		cfg.Results.names = names // for its folders, before the first job
	}
	c := *cfg
	c.Template = cfg.Template.WithNames(names)
	if c.TagTmpl != nil {
		c.TagTmpl = cfg.TagTmpl.WithNames(names)
	}
	return &c, nil
}

// inputs yields the inputs of each job, less those -r skips, and none with
// -n0.
func (cfg *Config) inputs(rd *input.Reader) iter.Seq2[[]string, error] {
	return func(yield func([]string, error) bool) {
		for args, err := range rd.Jobs() {
			if err != nil {
				yield(nil, err)
				return
			}
			if cfg.SkipEmpty && blank(args) {
				continue
			}
			if cfg.NoArgs {
				args = nil
			}
			if !yield(args, nil) {
				return
			}
		}
	}
}

// multi groups the inputs of jobs, one job's each, into as many per job as
// a command line holds (--xargs, -m, -X): up to MaxChars, counting the
// NUL that ends it as GNU parallel does; with -m and -X, no more than an
// even share of all the inputs over the slots, so that every slot has
// work. That share needs every input first: -m and -X with more than one
// slot read them all before the first job starts.
func (cfg *Config) multi(jobs iter.Seq2[Job, error]) (iter.Seq2[Job, error], error) {
	limit := cmp.Or(cfg.MaxChars, command.MaxArg+1)
	share := 0
	if cfg.Multi != "xargs" && cfg.Jobs > 1 {
		var all []Job
		for j, err := range jobs {
			if err != nil {
				return nil, err
			}
			all = append(all, j)
		}
		share = (len(all) + cfg.Jobs - 1) / cfg.Jobs
		jobs = sliceJobs(all)
	}
	// A job's line is base long with no inputs; each input adds its own
	// expansion, and after the first the spaces between (sep).
	expand := func(args ...string) int { return len(cfg.Template.Expand(args, 0, 0, cfg.Raw)) }
	base := expand()
	sep := expand("x", "x") - 2*expand("x") + base
	return func(yield func(Job, error) bool) {
		seq, size := 0, base
		var group []string
		n := 0 // inputs in group
		emit := func() bool {
			seq++
			j := Job{Seq: seq, Args: group, Line: cfg.Template.Expand(group, seq, slotMarker, cfg.Raw)}
			group, size, n = nil, base, 0
			return yield(j, nil)
		}
		for j, err := range jobs {
			if err != nil {
				yield(Job{}, err)
				return
			}
			grow := expand(j.Args...) - base
			if n > 0 {
				grow += sep
			}
			if n > 0 && (size+grow+1 > limit || (share > 0 && n == share)) {
				if !emit() {
					return
				}
			}
			group, size, n = append(group, j.Args...), size+grow, n+1
		}
		if n > 0 {
			emit()
		}
	}, nil
}

// blank reports whether every input is empty or white space.
func blank(args []string) bool {
	for _, a := range args {
		if strings.TrimSpace(a) != "" {
			return false
		}
	}
	return true
}

func sliceJobs(list []Job) iter.Seq2[Job, error] {
	return func(yield func(Job, error) bool) {
		for _, j := range list {
			if !yield(j, nil) {
				return
			}
		}
	}
}

// skipLogged drops the jobs that the job log says are done (with
// --resume-failed, done and succeeded). Before anything runs, it reads the
// input as far as the job log goes and checks that every logged job had the
// command line that the same job number has now: if the input or command
// changed, skipping by number would skip the wrong jobs.
func (cfg *Config) skipLogged(jobs iter.Seq2[Job, error], rows map[int]LogRow) (iter.Seq2[Job, error], error) {
	maxSeq := 0
	for seq := range rows {
		maxSeq = max(maxSeq, seq)
	}
	next, stop := iter.Pull2(jobs)
	var prefix []Job
	for len(prefix) < maxSeq {
		j, err, ok := next()
		if err != nil {
			stop()
			return nil, err
		}
		if !ok {
			break
		}
		prefix = append(prefix, j)
	}
	for _, j := range prefix {
		if r, ok := rows[j.Seq]; ok && !matches(r.Command, strings.ReplaceAll(j.Line, PathText, "{}"), SlotText) {
			stop()
			return nil, fmt.Errorf("--joblog %s does not match this run: job %d ran\n\t%s\nbut the same job is now\n\t%s\nherd will not guess which jobs are done: give a new job log, or delete this one to start over",
				cfg.Joblog, j.Seq, r.Command, strings.ReplaceAll(Shown(j.Line, slotMarker), SlotText, "{%}"))
		}
	}
	for seq := range rows {
		if seq > len(prefix) {
			stop()
			return nil, fmt.Errorf("--joblog %s has job %d, but the input now makes only %d jobs: give a new job log, or delete this one to start over", cfg.Joblog, seq, len(prefix))
		}
	}
	done := func(seq int) bool {
		r, ok := rows[seq]
		return ok && (cfg.Resume || !r.Failed())
	}
	return func(yield func(Job, error) bool) {
		defer stop()
		for _, j := range prefix {
			if !done(j.Seq) && !yield(j, nil) {
				return
			}
		}
		for {
			j, err, ok := next()
			if !ok || !yield(j, err) || err != nil {
				return
			}
		}
	}, nil
}
