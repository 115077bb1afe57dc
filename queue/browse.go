package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// JobQuery selects jobs for [Client.Jobs]. The zero value selects the
// first page of the jobs still in the queue (waiting, running or waiting
// to retry), oldest first.
type JobQuery struct {
	// State selects jobs in one state; "" means every job not finished.
	State State
	// Queue is a named queue; "" means every queue.
	Queue string
	// Kind, if set, is the kind of the jobs; IDPrefix the start of their
	// ids; Error text that one of their errors contains.
	Kind, IDPrefix, Error string
	// After is where the page starts: [JobPage.Next] of the page before.
	// Zero means the first page.
	After uint64
	// Limit is the most jobs on the page; zero means 50.
	Limit int
}

// JobPage is a page of jobs, oldest first.
type JobPage struct {
	Jobs []*Info `json:"jobs"`
	// Next is the cursor of the next page (JobQuery.After), zero at the
	// end. A page may hold fewer jobs than asked for, even none, and have
	// a next page: a page reads at most scanLimit jobs to fill itself, so
	// that a filter few jobs match answers as fast as any.
	Next uint64 `json:"next,omitempty"`
}

// scanLimit is the most stored messages one page reads.
const scanLimit = 2048

// Jobs returns a page of the jobs that q selects. It reads the jobs in
// the order they were stored, from the cursor on, and never counts them:
// a page of a queue of millions comes as fast as one of a dozen. Waiting,
// running and retrying jobs are read from the queue, dead ones from their
// marks, succeeded and cancelled ones from their records (kept for the
// queue's retention).
func (c *Client) Jobs(ctx context.Context, q JobQuery) (*JobPage, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	if q.Queue != "" && !validQueue(q.Queue) {
		return nil, fmt.Errorf("queue: jobs: queue %q: want letters, digits and - _ = /", q.Queue)
	}
	// Dead jobs are read by their marks' subjects, which the server
	// matches. Other jobs are read in the stream's order, and sorted out
	// by subject here: a read by a subject with wildcards makes the
	// server count every subject it matches, which takes long in a queue
	// of millions.
	var filter, prefix string
	switch q.State {
	case "", Queued, Scheduled, Running, Retrying:
		prefix = jobRoot + "."
	case Dead:
		filter = deadFilter(q.Queue)
	case Succeeded, Cancelled:
		prefix = recRoot + "."
	case Pending:
		prefix = waitRoot + "."
	case Skipped:
		prefix = skipRoot + "."
	default:
		return nil, fmt.Errorf("queue: jobs: no state %q", q.State)
	}
	if prefix != "" && q.Queue != "" {
		prefix += q.Queue + "."
	}
	seq := max(q.After, 1)
	if q.After == 0 && strings.HasPrefix(prefix, jobRoot) {
		// The jobs below every consumer's floor have finished.
		seq = max(seq, c.firstUnfinished(ctx, q.Queue))
	}
	var last uint64 // the stream's last sequence, for reads by range
	if filter == "" {
		var err error
		if last, err = c.lastSeq(ctx); err != nil {
			return nil, fmt.Errorf("queue: jobs: %w", err)
		}
	}
	// read returns the messages of the next stretch of the stream from
	// seq on, where the stretch after it starts, and whether it is the
	// last.
	read := func(seq uint64, n int) (msgs []storedMsg, next uint64, end bool, err error) {
		if filter != "" {
			msgs, err = c.directGet(ctx, map[string]any{"seq": seq, "batch": n, "next_by_subj": filter}, n)
			if len(msgs) > 0 {
				next = msgs[len(msgs)-1].seq + 1
			}
			return msgs, next, len(msgs) < n, err
		}
		to := min(seq+uint64(n)-1, last)
		msgs, err = c.readRange(ctx, seq, to)
		return msgs, to + 1, to >= last, err
	}
	page := &JobPage{}
	for scanned := 0; scanned < scanLimit; {
		// The first read asks for what would fill the page unfiltered.
		n := min(256, scanLimit-scanned)
		if scanned == 0 {
			n = min(n, q.Limit+1)
		}
		msgs, next, end, err := read(seq, n)
		if err != nil {
			return nil, fmt.Errorf("queue: jobs: %w", err)
		}
		scanned += n
		kept := msgs
		if prefix != "" {
			kept = make([]storedMsg, 0, len(msgs))
			for _, m := range msgs {
				if strings.HasPrefix(m.subject, prefix) {
					kept = append(kept, m)
				}
			}
		}
		infos, err := c.pageInfos(ctx, &q, kept)
		if err != nil {
			return nil, fmt.Errorf("queue: jobs: %w", err)
		}
		for i, info := range infos {
			if info == nil || !q.matches(info) {
				continue
			}
			page.Jobs = append(page.Jobs, info)
			if len(page.Jobs) == q.Limit {
				if !end || kept[i].seq != msgs[len(msgs)-1].seq {
					page.Next = kept[i].seq + 1
				}
				return page, nil
			}
		}
		if end {
			return page, nil
		}
		seq = next
	}
	page.Next = seq
	return page, nil
}

// firstUnfinished returns the stream sequence from which a queue's
// unfinished jobs may be found ("" for every queue): the lowest floor of
// its consumers, under which every job has finished; 1 if it cannot tell.
func (c *Client) firstUnfinished(ctx context.Context, queue string) uint64 {
	first := uint64(0)
	names := c.stream.ListConsumers(ctx)
	for ci := range names.Info() {
		parts := strings.Split(ci.Config.FilterSubject, ".")
		if len(parts) != 5 || parts[0]+"."+parts[1] != jobRoot || (queue != "" && parts[2] != queue) {
			continue
		}
		if floor := ci.AckFloor.Stream + 1; first == 0 || floor < first {
			first = floor
		}
	}
	if names.Err() != nil && !errors.Is(names.Err(), jetstream.ErrEndOfData) {
		return 1
	}
	return max(first, 1)
}

// pageInfos returns the current record of the job of each message read
// for a page of jobs (nil where there is none to show). A job's kind and
// id do not change, so jobs are sorted out by them before their records
// are read.
func (c *Client) pageInfos(ctx context.Context, q *JobQuery, msgs []storedMsg) ([]*Info, error) {
	state := q.State
	infos := make([]*Info, len(msgs))
	switch state {
	case Dead: // marks: the records are read by id
		ids := make([]string, 0, len(msgs))
		for _, m := range msgs {
			if id := deadIDOf(m.subject); strings.HasPrefix(id, q.IDPrefix) {
				ids = append(ids, id)
			}
		}
		byID, err := c.records(ctx, ids)
		if err != nil {
			return nil, err
		}
		for i, m := range msgs {
			if info := byID[deadIDOf(m.subject)]; info != nil && info.State == Dead {
				infos[i] = info
			}
		}
		return infos, nil
	case Succeeded, Cancelled, Pending, Skipped: // records
		for i, m := range msgs {
			info := new(Info)
			if json.Unmarshal(m.data, info) == nil && info.State == state {
				infos[i] = info
			}
		}
		return infos, nil
	}
	// Jobs still in the queue, with their records if newer.
	seqs := make([]uint64, len(msgs))
	for i, m := range msgs {
		if !strings.HasPrefix(idOf(m.subject), q.IDPrefix) {
			continue
		}
		info := new(Info)
		if json.Unmarshal(m.data, info) == nil && info.ID != "" && (q.Kind == "" || info.Kind == q.Kind) {
			infos[i], seqs[i] = info, m.seq
		}
	}
	have := infos[:0:0]
	var haveSeqs []uint64
	var at []int
	for i, info := range infos {
		if info != nil {
			have, haveSeqs, at = append(have, info), append(haveSeqs, seqs[i]), append(at, i)
		}
	}
	cur, err := c.current(ctx, have, haveSeqs)
	if err != nil {
		return nil, err
	}
	for k, info := range cur {
		i := at[k]
		infos[i] = nil
		if info.State.Finished() || (state != "" && info.State != state) {
			continue
		}
		infos[i] = info
	}
	return infos, nil
}

// matches reports whether a job is one that q selects, its state aside.
func (q *JobQuery) matches(info *Info) bool {
	if q.Kind != "" && info.Kind != q.Kind {
		return false
	}
	if !strings.HasPrefix(info.ID, q.IDPrefix) {
		return false
	}
	if q.Error != "" {
		for _, e := range info.Errors {
			if strings.Contains(e, q.Error) {
				return true
			}
		}
		return false
	}
	return true
}

// Infos returns what the queue knows now of the jobs with the given ids,
// by id, reading them 256 at a time: an id the queue knows nothing of is
// left out. Given the ids of a graph ([Client.EnqueueGraph]), it says
// where the whole graph is in one call. Big results kept apart are not read back ([Client.Info] does).
func (c *Client) Infos(ctx context.Context, ids []string) (map[string]*Info, error) {
	infos, err := c.records(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("queue: jobs: %w", err)
	}
	for _, info := range infos {
		if info.State.Finished() {
			if err := c.settled(ctx); err != nil {
				return nil, fmt.Errorf("queue: jobs: %w", err)
			}
			break
		}
	}
	return infos, nil
}

// ReadResults reads back into each finished job of infos its result, if
// it was too big for the job's record and kept apart (Info.ResultApart),
// as [Client.Info] does: [Client.Infos] and [Client.Jobs] do not, to keep
// pages of jobs small.
func (c *Client) ReadResults(ctx context.Context, infos map[string]*Info) error {
	for _, info := range infos {
		if !info.State.Finished() {
			continue
		}
		if err := c.readResult(ctx, info); err != nil {
			return fmt.Errorf("queue: job %s: result: %w", info.ID, err)
		}
	}
	return nil
}

// records returns what the queue knows now of the jobs with the given
// ids, by id (none for an id it knows nothing of), reading them in one
// request per 256.
func (c *Client) records(ctx context.Context, ids []string) (map[string]*Info, error) {
	out, _, err := c.recordsAt(ctx, ids)
	return out, err
}

// recordsAt is records, with the stream sequence of each record read: what
// a write that expects the record unchanged expects.
func (c *Client) recordsAt(ctx context.Context, ids []string) (map[string]*Info, map[string]uint64, error) {
	out := make(map[string]*Info, len(ids))
	newest := make(map[string]uint64, len(ids))
	for start := 0; start < len(ids); start += 256 {
		chunk := ids[start:min(start+256, len(ids))]
		subjects := make([]string, 0, len(chunk))
		for _, id := range chunk {
			if validID(id) {
				subjects = append(subjects, idSubject(id))
			}
		}
		// Each id has up to three subjects: its job's, its record's, and
		// the one it waited for its parents in.
		msgs, err := c.lasts(ctx, subjects, 3*len(subjects))
		if err != nil {
			return nil, nil, err
		}
		keepNewest(out, newest, msgs)
	}
	return out, newest, nil
}

// keepNewest adds to out each job's record among msgs, read from its
// subjects, if it is newer than the one there (newest holds their stream
// sequences).
func keepNewest(out map[string]*Info, newest map[string]uint64, msgs []storedMsg) {
	for _, m := range msgs {
		id := idOf(m.subject)
		if m.seq < newest[id] {
			continue
		}
		info := new(Info)
		if json.Unmarshal(m.data, info) == nil {
			out[id], newest[id] = info, m.seq
		}
	}
}
