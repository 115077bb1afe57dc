package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Jobs that wait for other jobs. A job enqueued with parents
// ([Options.After], or a [Graph]) waits until every parent has succeeded;
// then it is put in its queue. Three kinds of subject hold what that
// takes:
//
//	herd.wait.<queue>.<priority>.<id>  the job's record while it waits (Pending), or once it will not run (Skipped)
//	herd.flow.<id>                     which of its parents have succeeded: a bit for each, in the order of Info.Parents
//	herd.flow.<parent>.<id>            an edge: the parent's place in the job's Parents
//
// In herd.flow subjects an id's dots are written as colons, so that each
// id is one token and no flow subject matches a job's herd.*.*.*.<id>.
//
// Every step is one message stored only if what it was decided on is
// unchanged (an expected last sequence), and may be taken again: that is
// what makes a child start once, after all its parents, whoever dies when.
// (JetStream's atomic batches would do it in fewer rules, but each costs
// a server with one copy of its files a few milliseconds a message.)
//
//   - An edge is written only while its parent's record is the one the
//     writer read, so it is written before the parent finishes or not at
//     all; and a finished parent's record is written only if it has no
//     edge (an expected last sequence of 0 on its edges), or else with
//     Children set, after which its edges are passed on. A job without
//     children pays one header for this, nothing more; a job of a graph
//     knows its children from the start.
//   - A parent's success sets its bit in the child's bits; a bit set twice
//     is set once. Whoever makes a child releasable — the parent that
//     sets its last bit, the end of its registration, the retry of a
//     failed parent — looks, after its own write, whether the others are
//     done, and if so stores the child's job message, expecting the record
//     it read: of the writers that race, the last one sees the others'
//     writes, and one store wins.
//   - A finished job is acknowledged only after its edges are passed on; a
//     worker killed before that leaves the job to be delivered again, and
//     the worker that gets it passes them on again, which finds done what
//     was done.
const (
	waitRoot = "herd.wait"
	flowRoot = "herd.flow"
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
// A name used twice, a parent not in the graph, a cycle, an id that the
// queue has already, or a parent in Options.After that it does not know
// is an error, and nothing is stored. The graph is stored in an order
// that lets nothing run before all of it is stored: what the jobs wait
// for first, then the jobs that wait, then those that do not. If a write
// fails, what was stored of the graph is removed.
func (c *Client) EnqueueGraph(ctx context.Context, g *Graph) (map[string]string, error) {
	order, err := g.order()
	if err != nil {
		return nil, fmt.Errorf("queue: enqueue graph: %w", err)
	}
	now := time.Now()
	infos := make([]*Info, len(g.nodes))
	ids := make(map[string]string, len(g.nodes))
	seen := make(map[string]string, len(g.nodes))
	var given []string // the ids the caller chose
	for i, n := range g.nodes {
		if infos[i], err = newInfo(n.job, now); err != nil {
			return nil, err
		}
		if other, dup := seen[infos[i].ID]; dup {
			return nil, fmt.Errorf("queue: enqueue graph: jobs %q and %q have the same id %s", other, n.name, infos[i].ID)
		}
		seen[infos[i].ID], ids[n.name] = n.name, infos[i].ID
		if n.job.Options.ID != "" {
			given = append(given, n.job.Options.ID)
		}
	}
	if err := c.checkIDs(ctx, given, seen, g); err != nil {
		return nil, fmt.Errorf("queue: enqueue graph: %w", err)
	}
	// What the jobs wait for, the jobs that wait, and those that do not.
	var flows, waiting, roots []*nats.Msg
	registers := make([]int, len(g.nodes)) // where each job's parents already in the queue start
	hasChildren := make(map[string]bool)
	for _, n := range g.nodes {
		for _, p := range n.after {
			hasChildren[ids[p]] = true
		}
	}
	for _, i := range order {
		n, info := g.nodes[i], infos[i]
		info.Children = hasChildren[info.ID]
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
		info.Parents = unique(nil, n.after, func(p string) string { return ids[p] })
		internal := len(info.Parents)
		info.Parents = unique(info.Parents, n.job.Options.After, func(id string) string { return id })
		registers[i] = internal
		if len(info.Parents) > MaxParents {
			return nil, fmt.Errorf("queue: enqueue %s %s: %d parents: at most %d", info.Kind, info.ID, len(info.Parents), MaxParents)
		}
		info.State, info.Registering = Pending, len(n.job.Options.After) > 0
		rec, err := c.newWaitMsg(info)
		if err != nil {
			return nil, fmt.Errorf("queue: enqueue %s %s: %w", info.Kind, info.ID, err)
		}
		expectLast(rec, info.ID, 0)
		waiting = append(waiting, rec)
		count := &nats.Msg{Subject: countSubject(info.ID), Data: newBits(len(info.Parents)), Header: nats.Header{}}
		flows = append(flows, count)
		for k, p := range info.Parents[:internal] {
			flows = append(flows, newEdgeMsg(p, info.ID, k))
		}
	}
	for _, group := range [][]*nats.Msg{flows, waiting, roots} {
		if err := c.storeGroup(ctx, group); err != nil {
			c.unstore(slices.Concat(flows, waiting, roots))
			return nil, fmt.Errorf("queue: enqueue graph: %w", err)
		}
	}
	for i, info := range infos {
		if len(g.nodes[i].after)+len(g.nodes[i].job.Options.After) == 0 {
			c.counts.of(info.Queue).enqueued.Add(1)
		}
	}
	for _, i := range order {
		if len(g.nodes[i].job.Options.After) > 0 {
			if err := c.register(ctx, infos[i], registers[i]); err != nil {
				return nil, fmt.Errorf("queue: enqueue %s %s: %w", infos[i].Kind, infos[i].ID, err)
			}
		}
	}
	return ids, nil
}

// unique appends to ids the id of each of names, once.
func unique(ids, names []string, id func(string) string) []string {
	for _, n := range names {
		if !slices.Contains(ids, id(n)) {
			ids = append(ids, id(n))
		}
	}
	return ids
}

// checkIDs refuses a graph before anything is stored if an id given is
// taken, or a parent named by id is not in the queue.
func (c *Client) checkIDs(ctx context.Context, given []string, inGraph map[string]string, g *Graph) error {
	have, err := c.records(ctx, given)
	if err != nil {
		return err
	}
	for _, id := range given {
		if have[id] != nil {
			return fmt.Errorf("job %q: the queue has a job with id %s already", inGraph[id], id)
		}
	}
	var parents []string
	for _, n := range g.nodes {
		for _, id := range n.job.Options.After {
			if _, ok := inGraph[id]; ok {
				return fmt.Errorf("job %s is in the graph: name it in Add's after, not in Options.After", id)
			}
			if !validID(id) {
				return fmt.Errorf("parent %q: %w", id, ErrNotFound)
			}
			parents = append(parents, id)
		}
	}
	slices.Sort(parents)
	parents = slices.Compact(parents)
	if have, err = c.records(ctx, parents); err != nil {
		return err
	}
	for _, id := range parents {
		if have[id] == nil {
			return fmt.Errorf("parent %s: %w", id, ErrNotFound)
		}
	}
	return nil
}

// storeGroup stores msgs, group-committed, and returns the first error.
func (c *Client) storeGroup(ctx context.Context, msgs []*nats.Msg) error {
	if len(msgs) == 0 {
		return nil
	}
	errs, err := c.commit.store(ctx, msgs)
	if err != nil {
		return err
	}
	for i, err := range errs {
		if wrongLastSequence(err) {
			return fmt.Errorf("%s: stored meanwhile by another: %w", msgs[i].Subject, err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unstore removes what a graph that could not be stored whole left.
func (c *Client) unstore(msgs []*nats.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range msgs {
		if c.stream.Purge(ctx, jetstream.WithPurgeSubject(m.Subject)) != nil {
			c.log.Warn("queue: a graph could not be stored whole, nor removed", "subject", m.Subject)
			return
		}
	}
}

// newWaitMsg is a pending or skipped job's record.
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

// newEdgeMsg is an edge from parent to child, whose k-th parent it is.
func newEdgeMsg(parent, child string, k int) *nats.Msg {
	return &nats.Msg{Subject: edgeSubject(parent, child), Data: []byte(strconv.Itoa(k)), Header: nats.Header{}}
}

// register writes the edges from a new pending job's parents that were in
// the queue before it (from its first-th parent on), then ends its
// registration: the parents that had succeeded are counted, those that
// had failed skip it, and if none is left it is released.
func (c *Client) register(ctx context.Context, child *Info, first int) error {
	var succeeded []int
	var failed []*Info
	left := make([]int, 0, len(child.Parents)-first)
	for k := first; k < len(child.Parents); k++ {
		left = append(left, k)
	}
	for tries := 0; len(left) > 0; tries++ {
		if tries == 100 {
			return fmt.Errorf("parents keep changing: %d not registered", len(left))
		}
		msgs := make([]*nats.Msg, len(left))
		pinfos := make([]*Info, len(left))
		for i, k := range left {
			p := child.Parents[k]
			pinfo, rev, err := c.info(ctx, p)
			if err != nil {
				return fmt.Errorf("parent %s: %w", p, err)
			}
			msgs[i], pinfos[i] = newEdgeMsg(p, child.ID, k), pinfo
			expectLast(msgs[i], p, rev)
		}
		errs, err := c.commit.store(ctx, msgs)
		if err != nil {
			return err
		}
		var again []int
		for i, err := range errs {
			switch {
			case err == nil && pinfos[i].State == Succeeded:
				succeeded = append(succeeded, left[i])
			case err == nil && pinfos[i].State.failed():
				failed = append(failed, pinfos[i])
			case err == nil:
			case wrongLastSequence(err):
				again = append(again, left[i]) // the parent moved on: read it again
			default:
				return fmt.Errorf("parent %s: %w", child.Parents[left[i]], err)
			}
		}
		left = again
	}
	if _, err := c.setBits(ctx, child.ID, succeeded...); err != nil {
		return err
	}
	// The registration ends, and the failed parents skip the job.
	skipped := false
	cur, err := c.editRecord(ctx, child.ID, func(cur *Info) bool {
		if !cur.Registering {
			return false // ended before: an enqueue sent again
		}
		cur.Registering = false
		for _, p := range failed {
			skip(cur, p)
		}
		skipped = cur.State == Skipped
		return true
	})
	if err == nil && cur == nil {
		err = fmt.Errorf("%w: %s", ErrNotFound, child.ID)
	}
	if err != nil {
		return err
	}
	if skipped {
		return c.settle(ctx, &Info{ID: child.ID, State: Skipped})
	}
	return c.release(ctx, child.ID)
}

// editRecord reads a pending or skipped job's record, lets edit change
// it, and stores it expecting the record read, again until nothing
// changed meanwhile; edit reports whether there is anything to store. It
// returns the record as stored, or as read if edit stored nothing; nil if
// the queue has no such job.
func (c *Client) editRecord(ctx context.Context, id string, edit func(cur *Info) bool) (*Info, error) {
	for {
		cur, rev, err := c.info(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if !edit(cur) {
			return cur, nil
		}
		m, err := c.newWaitMsg(cur)
		if err != nil {
			return nil, err
		}
		expectLast(m, id, rev)
		err = c.storeGroup(ctx, []*nats.Msg{m})
		if wrongLastSequence(err) {
			continue // changed meanwhile: read it again
		}
		return cur, err
	}
}

// skip marks a pending job skipped for its failed parent p.
func skip(child, p *Info) {
	if slices.Contains(child.SkippedBy, p.ID) || (child.State != Pending && child.State != Skipped) {
		return
	}
	child.State, child.UpdatedAt = Skipped, time.Now()
	child.SkippedBy = append(child.SkippedBy, p.ID)
	child.Errors = append(child.Errors, "not run: parent "+p.ID+" "+why(p))
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

// bits is a pending job's record of which of its n parents have
// succeeded, stored as n (a uvarint) and a bit for each.
type bits struct {
	seq uint64
	n   int
	set []byte
}

// newBits is the stored form of n parents, none succeeded.
func newBits(n int) []byte {
	return append(binary.AppendUvarint(nil, uint64(n)), make([]byte, (n+7)/8)...)
}

func (b *bits) has(k int) bool { return k/8 < len(b.set) && b.set[k/8]&(1<<(k%8)) != 0 }

// all reports whether every parent has succeeded.
func (b *bits) all() bool {
	for k := range b.n {
		if !b.has(k) {
			return false
		}
	}
	return true
}

// readBits reads a job's bits; nil if it has none (it never waited, or
// was released and they went).
func (c *Client) readBits(ctx context.Context, id string) (*bits, error) {
	m, err := c.last(ctx, countSubject(id))
	if err != nil || m == nil {
		return nil, err
	}
	n, size := binary.Uvarint(m.data)
	if size <= 0 || len(m.data)-size < (int(n)+7)/8 {
		return nil, fmt.Errorf("job %s: bad record of its parents", id)
	}
	return &bits{seq: m.seq, n: int(n), set: m.data[size:]}, nil
}

// setBits sets the bits of the given parents of a job, each once, and
// reports whether every parent's is set now.
func (c *Client) setBits(ctx context.Context, id string, ks ...int) (bool, error) {
	for {
		b, err := c.readBits(ctx, id)
		if err != nil || b == nil {
			return false, err
		}
		set := slices.Clone(b.set)
		changed := false
		for _, k := range ks {
			if k < b.n && !b.has(k) {
				set[k/8] |= 1 << (k % 8)
				changed = true
			}
		}
		if !changed {
			return b.all(), nil
		}
		m := &nats.Msg{Subject: countSubject(id), Data: append(binary.AppendUvarint(nil, uint64(b.n)), set...), Header: nats.Header{}}
		expectSeq(m, m.Subject, b.seq)
		err = c.storeGroup(ctx, []*nats.Msg{m})
		if wrongLastSequence(err) {
			continue // another parent's meanwhile: read again
		}
		b.set = set
		return b.all(), err
	}
}

// release puts a pending job in its queue if every parent has succeeded
// and its registration has ended: its job message is stored expecting the
// record read, so that of those who try at once, one does.
func (c *Client) release(ctx context.Context, id string) error {
	for {
		cur, rev, err := c.info(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur.State != Pending || cur.Registering {
			return nil
		}
		b, err := c.readBits(ctx, id)
		if err != nil || b == nil || !b.all() {
			return err
		}
		cur.State, cur.UpdatedAt = Queued, time.Now()
		if cur.RunAt.After(cur.UpdatedAt) {
			cur.State = Scheduled
		}
		job, err := newJobMsg(cur, false)
		if err != nil {
			return err
		}
		expectLast(job, id, rev)
		err = c.storeGroup(ctx, []*nats.Msg{job})
		if wrongLastSequence(err) {
			continue // changed meanwhile: look again
		}
		if err != nil {
			return err
		}
		c.counts.of(cur.Queue).enqueued.Add(1)
		// What it waited with goes; if this does not happen, the record
		// is older than the job's message, and read as such.
		for _, subject := range []string{waitSubject(cur), countSubject(id)} {
			if err := c.stream.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
				c.log.Warn("queue: removing what a released job waited with", "subject", subject, "error", err)
			}
		}
		return nil
	}
}

// edge is an edge read from the stream.
type edge struct {
	child string
	k     int // the parent's place in the child's Parents
}

// edges returns the edges from a parent. They are found by the stream's
// index of subjects (the last message of each subject that matches), up to
// 1,024 of them, the most such a read returns; a parent with more is read
// in the stream's order, which takes longer.
func (c *Client) edges(ctx context.Context, parent string) ([]edge, error) {
	filter := edgeFilter(parent)
	msgs, err := c.lasts(ctx, []string{filter}, 1024)
	if err != nil && strings.Contains(err.Error(), "413") {
		msgs, err = c.scan(ctx, filter)
	}
	if err != nil {
		return nil, err
	}
	es := make([]edge, len(msgs))
	for i, m := range msgs {
		k, err := strconv.Atoi(string(m.data))
		if err != nil {
			return nil, fmt.Errorf("bad edge %s: %q", m.subject, m.data)
		}
		es[i] = edge{child: childOf(m.subject), k: k}
	}
	return es, nil
}

// scan reads every message on the subjects that match filter, in the
// stream's order.
func (c *Client) scan(ctx context.Context, filter string) ([]storedMsg, error) {
	var all []storedMsg
	for seq := uint64(1); ; {
		msgs, err := c.directGet(ctx, map[string]any{"seq": seq, "batch": 1024, "next_by_subj": filter}, 1024)
		if err != nil {
			return nil, err
		}
		all = append(all, msgs...)
		if len(msgs) < 1024 {
			return all, nil
		}
		seq = msgs[len(msgs)-1].seq + 1
	}
}

// settle passes a finished job's outcome on to the jobs that wait for it,
// and theirs on: on success, its bit is set in each child's, and a child
// whose bits are all set is released; on failure, each child is skipped,
// and its children in turn. It may be called again for the same job, and
// does again only what was not done.
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
			if p.State == Succeeded {
				all, err := c.setBits(ctx, e.child, e.k)
				if err != nil {
					return fmt.Errorf("job %s: child %s: %w", p.ID, e.child, err)
				}
				if !all {
					continue
				}
				if err := c.release(ctx, e.child); err != nil {
					return fmt.Errorf("job %s: child %s: %w", p.ID, e.child, err)
				}
				continue
			}
			child, err := c.skipFor(ctx, p, e.child)
			if err != nil {
				return fmt.Errorf("job %s: child %s: %w", p.ID, e.child, err)
			}
			if child != nil {
				todo = append(todo, child)
			}
		}
	}
	return nil
}

// skipFor skips a child for its failed parent p, and returns it if it is
// skipped for p (now or before): its children are to be skipped too.
func (c *Client) skipFor(ctx context.Context, p *Info, id string) (*Info, error) {
	cur, err := c.editRecord(ctx, id, func(cur *Info) bool {
		if cur.State != Pending && cur.State != Skipped || slices.Contains(cur.SkippedBy, p.ID) {
			return false // released or cancelled, or skipped for p before
		}
		skip(cur, p)
		return true
	})
	if err != nil || cur == nil || !slices.Contains(cur.SkippedBy, p.ID) {
		return nil, err
	}
	return cur, nil
}

// unskip lets the jobs skipped for a parent that was just retried wait
// for it again, and theirs; those that wait for nothing else are
// released.
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
			pending, err := c.unskipFor(ctx, p, e.child)
			if err != nil {
				return fmt.Errorf("job %s: child %s: %w", p, e.child, err)
			}
			if pending {
				if err := c.release(ctx, e.child); err != nil {
					return fmt.Errorf("job %s: child %s: %w", p, e.child, err)
				}
				todo = append(todo, e.child)
			}
		}
	}
	return nil
}

// unskipFor removes parent p from a child's SkippedBy, and reports whether
// the child waits again: p was the last reason it was skipped.
func (c *Client) unskipFor(ctx context.Context, p, id string) (bool, error) {
	pending := false
	_, err := c.editRecord(ctx, id, func(cur *Info) bool {
		i := slices.Index(cur.SkippedBy, p)
		if i < 0 {
			return false
		}
		cur.SkippedBy = slices.Delete(cur.SkippedBy, i, i+1)
		if len(cur.SkippedBy) == 0 && cur.State == Skipped {
			cur.State, cur.UpdatedAt = Pending, time.Now()
		}
		pending = cur.State == Pending
		return true
	})
	return pending, err
}
