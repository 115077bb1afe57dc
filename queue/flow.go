package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Jobs that wait for other jobs. A job enqueued with parents
// ([Options.After], or a [Graph]) waits until every parent has succeeded;
// then it is put in its queue. Three kinds of subject hold what that
// takes:
//
//	herd.wait.<queue>.<priority>.<id>  the job's record while it waits (Pending), or once it will not run (Skipped)
//	herd.flow.<id>                     how many of its parents have not succeeded yet: a number
//	herd.flow.<parent>.<id>            an edge: empty while it is to be passed on, "done" once the parent's success was
//
// In herd.flow subjects an id's dots are written as colons, so that each
// id is one token and no flow subject matches a job's herd.*.*.*.<id>.
//
// The rules that make a child run exactly once, whoever dies when:
//
//   - An edge is written only while its parent's record is the one the
//     writer read (an expected last sequence on the parent's subjects), so
//     it is written before the parent finishes or not at all; and a
//     finished parent's record is written only if it has no edge (an
//     expected last sequence of 0 on its edges), or else with Children
//     set, after which its edges are read and passed on. A job without
//     children pays one header for this, nothing more.
//   - Passing an edge on writes, in one atomic batch, the edge (done), the
//     child's count of parents left (expecting the count read), and, when
//     that count reaches zero, the child's job message or record
//     (expecting the record read). Whatever makes a child releasable in
//     another way (its registration ends, a failed parent is retried)
//     writes the count, expecting the one it read, beside the record: two
//     such writes cannot both pass on stale reads.
//   - A finished job is acknowledged only after its edges are passed on; a
//     worker killed before that leaves the job to be delivered again, and
//     the worker that gets it passes the edges on, finding done those that
//     were.
const (
	waitRoot = "herd.wait"
	flowRoot = "herd.flow"
	edgeDone = "done"
)

// Barrier is the kind of a job that does nothing: every worker runs it,
// whatever its handlers. It joins many parents to many children with one
// job between them (herd run --after does so), so that N parents and M
// children cost N+M edges, not N×M.
const Barrier = "herd.barrier"

// MaxParents is the most parents a job may wait for.
const MaxParents = 100_000

// waitSubject is where a job waits for its parents.
func waitSubject(info *Info) string {
	return waitRoot + "." + info.Queue + "." + info.Priority.String() + "." + info.ID
}

// token writes an id as one subject token.
func token(id string) string { return strings.ReplaceAll(id, ".", ":") }

// countSubject holds how many parents of a job have not succeeded yet.
func countSubject(id string) string { return flowRoot + "." + token(id) }

// edgeSubject is the edge from parent to child.
func edgeSubject(parent, child string) string {
	return flowRoot + "." + token(parent) + "." + token(child)
}

// edgeFilter matches the edges from a parent.
func edgeFilter(parent string) string { return flowRoot + "." + token(parent) + ".*" }

// childOf returns the child's id in an edge's subject.
func childOf(edge string) string { return strings.ReplaceAll(afterDots(edge, 3), ":", ".") }

// expectSeq makes m's store depend on the last message on subject (which
// may have wildcards) having sequence seq (0: there is none).
func expectSeq(m *nats.Msg, subject string, seq uint64) {
	m.Header.Set("Nats-Expected-Last-Subject-Sequence", strconv.FormatUint(seq, 10))
	m.Header.Set("Nats-Expected-Last-Subject-Sequence-Subject", subject)
}

// expectNoChildren makes a finished job's record stored only if no job
// waits for it.
func expectNoChildren(m *nats.Msg, id string) { expectSeq(m, edgeFilter(id), 0) }

// failed reports whether a job in state s failed for good, so that the
// jobs waiting for it will not run.
func (s State) failed() bool { return s == Dead || s == Cancelled || s == Skipped }

// A Graph is a set of jobs, some of which wait for others of the set, to
// enqueue together with [Client.EnqueueGraph]:
//
//	var g queue.Graph
//	g.Add("fetch", queue.NewJob{Kind: "fetch", Payload: url})
//	g.Add("resize", queue.NewJob{Kind: "resize"}, "fetch")
//	g.Add("thumbnail", queue.NewJob{Kind: "thumbnail"}, "fetch")
//	g.Add("publish", queue.NewJob{Kind: "publish"}, "resize", "thumbnail")
//	ids, err := c.EnqueueGraph(ctx, &g)
//
// A job of a graph may also wait for jobs already in the queue, named by
// id in its Options.After.
type Graph struct {
	nodes []graphNode
}

type graphNode struct {
	name  string
	job   NewJob
	after []string // names of the graph's jobs
}

// Add adds a job, named name in the graph, that runs once the jobs of the
// graph named in after have succeeded (and those of job.Options.After).
// Names are checked by [Client.EnqueueGraph].
func (g *Graph) Add(name string, job NewJob, after ...string) {
	g.nodes = append(g.nodes, graphNode{name: name, job: job, after: slices.Clone(after)})
}

// Len returns the number of jobs in the graph.
func (g *Graph) Len() int { return len(g.nodes) }

// order returns the graph's nodes in an order where each comes after its
// parents, or an error naming what is wrong: a name used twice, a parent
// that is not in the graph, a cycle.
func (g *Graph) order() ([]int, error) {
	index := make(map[string]int, len(g.nodes))
	for i, n := range g.nodes {
		if n.name == "" {
			return nil, fmt.Errorf("job %d of the graph has no name", i+1)
		}
		if _, dup := index[n.name]; dup {
			return nil, fmt.Errorf("two jobs of the graph are named %q", n.name)
		}
		index[n.name] = i
	}
	waits := make([]int, len(g.nodes))
	children := make([][]int, len(g.nodes))
	for i, n := range g.nodes {
		for _, p := range n.after {
			j, ok := index[p]
			if !ok {
				return nil, fmt.Errorf("job %q waits for %q, which is not in the graph", n.name, p)
			}
			if j == i {
				return nil, fmt.Errorf("job %q waits for itself", n.name)
			}
			waits[i]++
			children[j] = append(children[j], i)
		}
	}
	order := make([]int, 0, len(g.nodes))
	for i := range g.nodes {
		if waits[i] == 0 {
			order = append(order, i)
		}
	}
	for k := 0; k < len(order); k++ {
		for _, c := range children[order[k]] {
			if waits[c]--; waits[c] == 0 {
				order = append(order, c)
			}
		}
	}
	if len(order) < len(g.nodes) {
		var cycle []string
		for i, n := range g.nodes {
			if waits[i] > 0 {
				cycle = append(cycle, strconv.Quote(n.name))
			}
		}
		return nil, fmt.Errorf("the graph has a cycle through %s", strings.Join(cycle, ", "))
	}
	return order, nil
}

// EnqueueGraph adds the jobs of a graph and returns their ids by name.
// Each job runs once all of its parents have succeeded; a job whose parent
// fails for good (is dead, cancelled, or skipped itself) is Skipped, with
// the parent in its SkippedBy and the reason in its errors, and so are the
// jobs that wait for it. [Client.Retry] of the failed parent lets them
// run once it succeeds.
//
// A name used twice, a parent not in the graph, a cycle, or a parent in
// Options.After that the queue does not know is an error, and nothing is
// stored. A graph of up to 1,000 messages (a job and its count of parents
// left, and one per edge) is stored in one atomic batch: whole or not at
// all. A bigger one is stored in batches, the jobs that wait first and
// those that do not last, so that nothing runs before the whole graph is
// stored; if a batch fails, what was stored waits, and enqueueing the same
// graph again, with the same ids, stores the rest.
func (c *Client) EnqueueGraph(ctx context.Context, g *Graph) (map[string]string, error) {
	order, err := g.order()
	if err != nil {
		return nil, fmt.Errorf("queue: enqueue graph: %w", err)
	}
	now := time.Now()
	infos := make([]*Info, len(g.nodes))
	ids := make(map[string]string, len(g.nodes))
	seen := make(map[string]string, len(g.nodes))
	for i, n := range g.nodes {
		if infos[i], err = newInfo(n.job, now); err != nil {
			return nil, err
		}
		if other, dup := seen[infos[i].ID]; dup {
			return nil, fmt.Errorf("queue: enqueue graph: jobs %q and %q have the same id %s", other, n.name, infos[i].ID)
		}
		seen[infos[i].ID], ids[n.name] = n.name, infos[i].ID
	}
	// The parents already in the queue, read once each.
	external := make(map[string]bool)
	for _, n := range g.nodes {
		for _, id := range n.job.Options.After {
			external[id] = true
		}
	}
	for id := range external {
		if _, ok := seen[id]; ok {
			return nil, fmt.Errorf("queue: enqueue graph: job %s is in the graph: name it in Add's after, not in Options.After", id)
		}
		if _, err := c.Info(ctx, id); err != nil {
			return nil, fmt.Errorf("queue: enqueue graph: parent %s: %w", id, err)
		}
	}
	var waiting, roots []*nats.Msg
	for _, i := range order {
		n, info := g.nodes[i], infos[i]
		if err := c.ensureConsumer(ctx, info.Queue, info.Priority); err != nil {
			return nil, fmt.Errorf("queue: enqueue %s %s: %w", info.Kind, info.ID, err)
		}
		if len(n.after)+len(n.job.Options.After) == 0 {
			m, err := newJobMsg(info, true)
			if err != nil {
				return nil, fmt.Errorf("queue: enqueue %s %s: %w", info.Kind, info.ID, err)
			}
			roots = append(roots, m)
			continue
		}
		for _, p := range n.after {
			info.Parents = append(info.Parents, ids[p])
		}
		info.Parents = append(info.Parents, n.job.Options.After...)
		msgs, err := c.waitingMsgs(info, len(n.job.Options.After) > 0)
		if err != nil {
			return nil, fmt.Errorf("queue: enqueue %s %s: %w", info.Kind, info.ID, err)
		}
		waiting = append(waiting, msgs...)
		for _, p := range n.after {
			waiting = append(waiting, c.newEdgeMsg(ids[p], info.ID, false))
		}
	}
	if err := c.storeAll(append(waiting, roots...)); err != nil {
		return nil, fmt.Errorf("queue: enqueue graph: %w", err)
	}
	for i, info := range infos {
		if len(g.nodes[i].after)+len(g.nodes[i].job.Options.After) == 0 {
			c.counts.of(info.Queue).enqueued.Add(1)
		}
	}
	for _, i := range order {
		if len(g.nodes[i].job.Options.After) > 0 {
			if err := c.register(ctx, infos[i], g.nodes[i].job.Options.After); err != nil {
				return nil, fmt.Errorf("queue: enqueue %s %s: %w", infos[i].Kind, infos[i].ID, err)
			}
		}
	}
	return ids, nil
}

// storeAll stores msgs in atomic batches, in order, and makes them
// durable. A job's id seen before fails the batch.
func (c *Client) storeAll(msgs []*nats.Msg) error {
	for len(msgs) > 0 {
		n := min(len(msgs), maxCommitMsgs)
		if err := c.commit.atomic(msgs[:n]); err != nil {
			if wrongLastSequence(err) {
				return fmt.Errorf("a job's id is taken, or its parent moved on: %w", err)
			}
			return err
		}
		msgs = msgs[n:]
	}
	return c.durable()
}

// waitingMsgs returns the messages that store a new job waiting for its
// parents: its record and its count of parents left. registering says
// that some parents are in the queue already: their edges are written
// afterwards (register), and the job is not released before that is done.
func (c *Client) waitingMsgs(info *Info, registering bool) ([]*nats.Msg, error) {
	if len(info.Parents) > MaxParents {
		return nil, fmt.Errorf("%d parents: at most %d", len(info.Parents), MaxParents)
	}
	info.State, info.Registering = Pending, registering
	rec, err := c.newWaitMsg(info)
	if err != nil {
		return nil, err
	}
	expectLast(rec, info.ID, 0)
	count := newCountMsg(info.ID, len(info.Parents), c.retention, false)
	expectSeq(count, count.Subject, 0)
	return []*nats.Msg{rec, count}, nil
}

// newWaitMsg is a waiting or skipped job's record.
func (c *Client) newWaitMsg(info *Info) (*nats.Msg, error) {
	m, err := newJobMsg(info, false)
	if err != nil {
		return nil, err
	}
	m.Subject = waitSubject(info)
	if info.State.Finished() {
		m.Header.Set("Nats-TTL", strconv.FormatInt(int64(c.retention/time.Second), 10))
	}
	return m, nil
}

// newCountMsg is a job's count of parents left; once it is released, the
// count expires with the job's record.
func newCountMsg(id string, n int, retention time.Duration, released bool) *nats.Msg {
	m := &nats.Msg{Subject: countSubject(id), Data: []byte(strconv.Itoa(n)), Header: nats.Header{}}
	if released {
		m.Header.Set("Nats-TTL", strconv.FormatInt(int64(retention/time.Second), 10))
	}
	return m
}

// newEdgeMsg is an edge from parent to child: to be passed on, or done
// (then it expires with the parent's record).
func (c *Client) newEdgeMsg(parent, child string, done bool) *nats.Msg {
	m := &nats.Msg{Subject: edgeSubject(parent, child), Header: nats.Header{}}
	if done {
		m.Data = []byte(edgeDone)
		m.Header.Set("Nats-TTL", strconv.FormatInt(int64(c.retention/time.Second), 10))
	}
	return m
}

// register writes the edges from a new waiting job's parents that were in
// the queue before it, then ends its registration: the parents that had
// succeeded are counted, those that had failed skip it, and if none is
// left it is released.
func (c *Client) register(ctx context.Context, child *Info, parents []string) error {
	var succeeded int
	var failed []*Info
	left := parents
	for tries := 0; len(left) > 0; tries++ {
		if tries == 100 {
			return fmt.Errorf("parents keep changing: %d not registered", len(left))
		}
		msgs := make([]*nats.Msg, len(left))
		pinfos := make([]*Info, len(left))
		for i, p := range left {
			pinfo, rev, err := c.info(ctx, p)
			if err != nil {
				return fmt.Errorf("parent %s: %w", p, err)
			}
			msgs[i], pinfos[i] = c.newEdgeMsg(p, child.ID, pinfo.State == Succeeded), pinfo
			expectLast(msgs[i], p, rev)
		}
		errs, err := c.commit.store(ctx, msgs)
		if err != nil {
			return err
		}
		var again []string
		for i, err := range errs {
			switch {
			case err == nil && pinfos[i].State == Succeeded:
				succeeded++
			case err == nil && pinfos[i].State.failed():
				failed = append(failed, pinfos[i])
			case err == nil:
			case wrongLastSequence(err):
				again = append(again, left[i]) // the parent moved on: read it again
			default:
				return fmt.Errorf("parent %s: %w", left[i], err)
			}
		}
		left = again
	}
	if err := c.durable(); err != nil {
		return err
	}
	// End the registration, counting the parents that had succeeded.
	var became *Info
	err := c.change(ctx, child.ID, func(cur *Info, count int) (int, bool, *nats.Msg, error) {
		became = nil
		if !cur.Registering {
			return count, false, nil, nil // ended before: an enqueue sent again
		}
		cur.Registering = false
		for _, p := range failed {
			if skip(cur, p) {
				became = cur
			}
		}
		return count - succeeded, true, nil, nil
	})
	if err != nil {
		return err
	}
	if became != nil {
		return c.settle(ctx, became)
	}
	return nil
}

// skip marks a waiting job skipped for its failed parent p, and reports
// whether it was waiting until now.
func skip(child, p *Info) bool {
	if slices.Contains(child.SkippedBy, p.ID) || (child.State != Pending && child.State != Skipped) {
		return false
	}
	was := child.State
	child.State, child.UpdatedAt = Skipped, time.Now()
	child.SkippedBy = append(child.SkippedBy, p.ID)
	child.Errors = append(child.Errors, "not run: parent "+p.ID+" "+why(p))
	return was == Pending
}

// why says how a parent failed.
func why(p *Info) string {
	last := ""
	if n := len(p.Errors); n > 0 {
		last, _, _ = strings.Cut(p.Errors[n-1], "\n")
		last = ": " + last
	}
	switch p.State {
	case Cancelled:
		return "was cancelled"
	case Skipped:
		return "did not run" + strings.TrimPrefix(last, ": not run")
	}
	return "is dead" + last
}

// change reads a waiting job's record and count of parents left, lets
// edit change them, and stores both, each expecting what was read, again
// until nothing changed meanwhile. edit returns the new count, whether
// there is anything to store, and any other message to store in the same
// batch. If the job is waiting with no parent left and its registration
// has ended, it is put in its queue instead. A job that waits no more
// (cancelled, or released before) keeps its record: only its count and
// the other message are stored.
func (c *Client) change(ctx context.Context, id string, edit func(cur *Info, count int) (n int, store bool, extra *nats.Msg, err error)) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		cur, rev, err := c.info(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return nil // deleted: nothing waits
		}
		if err != nil {
			return err
		}
		m, err := c.last(ctx, countSubject(id))
		if err != nil {
			return err
		}
		if m == nil {
			return nil // not a job that waits (or its count expired)
		}
		count, err := strconv.Atoi(string(m.data))
		if err != nil {
			return fmt.Errorf("job %s: bad count of parents %q", id, m.data)
		}
		waits := cur.State == Pending || cur.State == Skipped
		n, store, extra, err := edit(cur, count)
		if err != nil || !store {
			return err
		}
		var msgs []*nats.Msg
		if waits {
			if msgs, err = c.waitingOrReleased(cur, rev, n); err != nil {
				return err
			}
		}
		cm := newCountMsg(id, n, c.retention, cur.State != Pending && cur.State != Skipped)
		expectSeq(cm, cm.Subject, m.seq)
		msgs = append(msgs, cm)
		if extra != nil {
			msgs = append(msgs, extra)
		}
		err = c.commit.atomic(msgs)
		if wrongLastSequence(err) {
			continue // changed meanwhile: read it again
		}
		if err != nil {
			return err
		}
		return c.durable()
	}
}

// waitingOrReleased returns the messages that store a waiting job's
// record as cur says, expecting rev before: its job message if it is
// waiting for no parent and registered (it is released), or its record.
func (c *Client) waitingOrReleased(cur *Info, rev uint64, count int) ([]*nats.Msg, error) {
	if cur.State == Pending && count <= 0 && !cur.Registering {
		cur.State, cur.UpdatedAt = Queued, time.Now()
		if cur.RunAt.After(cur.UpdatedAt) {
			cur.State = Scheduled
		}
		job, err := newJobMsg(cur, false)
		if err != nil {
			return nil, err
		}
		expectLast(job, cur.ID, rev)
		// The record it waited in goes: replaced by an empty message that
		// expires at once, stored before the job's message.
		gone := &nats.Msg{Subject: waitSubject(cur), Header: nats.Header{}}
		gone.Header.Set("Nats-TTL", "1s")
		return []*nats.Msg{gone, job}, nil
	}
	rec, err := c.newWaitMsg(cur)
	if err != nil {
		return nil, err
	}
	expectLast(rec, cur.ID, rev)
	return []*nats.Msg{rec}, nil
}

// edge is an edge read from the stream.
type edge struct {
	subject string
	seq     uint64
	done    bool
}

// edges returns the edges from a parent.
func (c *Client) edges(ctx context.Context, parent string) ([]edge, error) {
	var es []edge
	filter := edgeFilter(parent)
	for seq := uint64(1); ; {
		msgs, err := c.directGet(ctx, map[string]any{"seq": seq, "batch": 1024, "next_by_subj": filter}, 1024)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			es = append(es, edge{subject: m.subject, seq: m.seq, done: string(m.data) == edgeDone})
		}
		if len(msgs) < 1024 {
			return es, nil
		}
		seq = msgs[len(msgs)-1].seq + 1
	}
}

// settle passes a finished job's outcome on to the jobs that wait for it,
// and theirs on: each child is released once its last parent has
// succeeded, or skipped if a parent failed for good. It may be called
// again for the same job: an edge done is not done again, and a job is
// skipped once for each parent.
func (c *Client) settle(ctx context.Context, parent *Info) error {
	todo := []*Info{parent}
	for len(todo) > 0 {
		p := todo[0]
		todo = todo[1:]
		es, err := c.edges(ctx, p.ID)
		if err != nil {
			return fmt.Errorf("job %s: children: %w", p.ID, err)
		}
		for _, e := range es {
			if e.done {
				continue
			}
			var became *Info
			err := c.change(ctx, childOf(e.subject), func(cur *Info, count int) (int, bool, *nats.Msg, error) {
				became = nil
				if p.State != Succeeded {
					if skip(cur, p) {
						became = cur
					}
					return count, became != nil, nil, nil
				}
				// The edge is done in the same batch, unless it was done
				// meanwhile.
				now, err := c.last(ctx, e.subject)
				if err != nil || now == nil || string(now.data) == edgeDone {
					return count, false, nil, err
				}
				done := c.newEdgeMsg(p.ID, cur.ID, true)
				expectSeq(done, e.subject, now.seq)
				if i := slices.Index(cur.SkippedBy, p.ID); i >= 0 {
					// Skipped for this parent, which was retried since.
					cur.SkippedBy = slices.Delete(cur.SkippedBy, i, i+1)
					if len(cur.SkippedBy) == 0 && cur.State == Skipped {
						cur.State = Pending
					}
				}
				return count - 1, true, done, nil
			})
			if err != nil {
				return fmt.Errorf("job %s: child %s: %w", p.ID, childOf(e.subject), err)
			}
			if became != nil {
				todo = append(todo, became)
			}
		}
	}
	return nil
}

// unskip lets the jobs skipped for a parent that was just retried wait
// for it again, and theirs.
func (c *Client) unskip(ctx context.Context, parent string) error {
	todo := []string{parent}
	for len(todo) > 0 {
		p := todo[0]
		todo = todo[1:]
		es, err := c.edges(ctx, p)
		if err != nil {
			return fmt.Errorf("job %s: children: %w", p, err)
		}
		for _, e := range es {
			if e.done {
				continue
			}
			child := childOf(e.subject)
			var became bool
			err := c.change(ctx, child, func(cur *Info, count int) (int, bool, *nats.Msg, error) {
				became = false
				i := slices.Index(cur.SkippedBy, p)
				if i < 0 {
					return count, false, nil, nil
				}
				cur.SkippedBy = slices.Delete(cur.SkippedBy, i, i+1)
				if len(cur.SkippedBy) == 0 && cur.State == Skipped {
					cur.State, cur.UpdatedAt, became = Pending, time.Now(), true
				}
				return count, true, nil, nil
			})
			if err != nil {
				return fmt.Errorf("job %s: child %s: %w", p, child, err)
			}
			if became {
				todo = append(todo, child)
			}
		}
	}
	return nil
}
