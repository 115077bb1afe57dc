package remote

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"

	"github.com/goherd/herd/internal/run"
	"github.com/goherd/herd/queue"
)

// waitFor sets up what the run's jobs wait for. With --after, one job of
// the queue's Barrier kind waits for every job of the runs named, and each
// job of this run waits for it: N jobs before and M after cost N+M edges,
// not N×M. With --after-each, job N of this run waits for job N of the
// run named; the jobs are read first, to refuse runs of different lengths
// before any is stored.
func (rm *remote) waitFor(ctx context.Context, jobs iter.Seq[run.Job]) (iter.Seq[run.Job], error) {
	if rm.AfterEach != "" {
		st, err := rm.earlier(ctx, "--after-each", rm.AfterEach)
		if err != nil {
			return nil, err
		}
		before := expand(st.Enqueued)
		list := slices.Collect(jobs)
		if len(list) != len(before) {
			return nil, fmt.Errorf("--after-each %s: that run has %d jobs and this one %d: job N of this run waits for job N of that one, so they must have as many",
				rm.AfterEach, len(before), len(list))
		}
		rm.each = make(map[int]string, len(list))
		for i, j := range list {
			rm.each[j.Seq] = rm.AfterEach + "." + strconv.Itoa(before[i])
		}
		jobs = slices.Values(list)
	}
	if len(rm.After) > 0 {
		var ids []string
		for _, id := range rm.After {
			st, err := rm.earlier(ctx, "--after", id)
			if err != nil {
				return nil, err
			}
			for _, seq := range expand(st.Enqueued) {
				ids = append(ids, id+"."+strconv.Itoa(seq))
			}
		}
		if len(ids) > 0 {
			rm.barrier = rm.run + "-after"
			barrier := queue.NewJob{Kind: queue.Barrier, Options: queue.Options{ID: rm.barrier, Queue: rm.QueueName, After: ids}}
			if _, err := rm.client.EnqueueBatch(ctx, []queue.NewJob{barrier}); err != nil {
				return nil, fmt.Errorf("--after: %w", err)
			}
		}
	}
	return jobs, nil
}

// earlier reads the state of a run that this one waits for.
func (rm *remote) earlier(ctx context.Context, flag, id string) (State, error) {
	st, err := ReadState(ctx, rm.client, id)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		return st, fmt.Errorf("%s %s: the queue has no such run (runs are kept for a week)", flag, id)
	case err != nil:
		return st, fmt.Errorf("%s %s: %w", flag, id, err)
	case st.Enqueueing:
		return st, fmt.Errorf("%s %s: that run is still putting its jobs on the queue: wait until it has (herd run --detach returns then)", flag, id)
	}
	return st, nil
}

// parentsOf returns the ids of the jobs that job seq of this run waits
// for.
func (rm *remote) parentsOf(seq int) []string {
	var ids []string
	if rm.barrier != "" {
		ids = append(ids, rm.barrier)
	}
	if id, ok := rm.each[seq]; ok {
		ids = append(ids, id)
	}
	return ids
}

// submitOnly stores the run's jobs, then prints the run's id (herd run
// --detach): nobody waits for their outcomes here.
func (rm *remote) submitOnly(ctx context.Context, jobs iter.Seq[run.Job]) error {
	close(rm.gone)
	rm.submit(ctx, jobs)
	if rm.subErr != nil || rm.r.Stopping() {
		return nil // the runner says why
	}
	rm.complete = true
	_, err := fmt.Fprintln(rm.Out, rm.run)
	return err
}
