package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Jobs that wait for other jobs. A job enqueued with parents
// ([Options.After], or a [Graph]) waits until every parent has succeeded;
// then it is put in its queue. A parent of the same graph lists it in its
// own record (Info.Waiters); four kinds of subject hold the rest:
//
//	herd.wait.<queue>.<priority>.<id>  the job's record while it waits (Pending)
//	herd.skip.<queue>.<priority>.<id>  its record once it will not run (Skipped)
//	herd-flow.<id>                     which of its parents have succeeded: a bit for each, in the order of Info.Parents
//	herd-flow.<parent>.<id>            an edge from a parent enqueued before the job: its place in the job's Parents
//
// In herd-flow subjects an id's dots are written as colons, so that each
// id is one token. The flow subjects are outside herd.>: a graph's
// thousands of edges would otherwise be walked by the server each time it
// finds the last message on a job's herd.*.*.*.<id>, which every record's
// store does.
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
//     knows its graph's children from the start.
//   - A parent's success sets its bit in the child's bits, expecting the
//     bits read; a bit set twice is set once. Whoever makes a child
//     releasable — the parent whose bit is the last one unset, the end of
//     its registration, the retry of a failed parent — stores the child's
//     job message instead, expecting the record it read: bits are never
//     unset, so the others' being set is enough. Of the writers that
//     race, one store wins, and the others read again.
//   - A finished job is acknowledged only after its edges are passed on,
//     and what that stored is synced; a worker killed before that leaves
//     the job to be delivered again, and the worker that gets it passes
//     them on again, which finds done what was done.
const (
	waitRoot = "herd.wait"
	skipRoot = "herd.skip"
	flowRoot = "herd-flow"
)

// Barrier is the kind of a job that does nothing: every worker runs it,
// whatever its handlers. It joins many parents to many children with one
// job between them (herd run --after does so), so that N parents and M
// children cost N+M edges, not N×M.
const Barrier = "herd.barrier"

// MaxParents is the most parents a job may wait for.
const MaxParents = 100_000

// waitSubject is where a job waits for its parents, or, once it will not
// run because one failed, where its record is: apart, so that the jobs
// waiting are counted from the stream's index.
func waitSubject(info *Info) string {
	root := waitRoot
	if info.State == Skipped {
		root = skipRoot
	}
	return root + "." + info.Queue + "." + info.Priority.String() + "." + info.ID
}

// pendingFilter matches the jobs of a named queue, or of every queue, that
// wait for their parents.
func pendingFilter(queue string) string {
	if queue == "" {
		return waitRoot + ".>"
	}
	return waitRoot + "." + queue + ".>"
}

// token writes an id as one subject token.
func token(id string) string { return strings.ReplaceAll(id, ".", ":") }

// countSubject holds a job's bits: which of its parents have succeeded.
func countSubject(id string) string { return flowRoot + "." + token(id) }

// edgeSubject is the edge from parent to child.
func edgeSubject(parent, child string) string {
	return flowRoot + "." + token(parent) + "." + token(child)
}

// edgeFilter matches the edges from a parent.
func edgeFilter(parent string) string { return flowRoot + "." + token(parent) + ".*" }

// childOf returns the child's id in an edge's subject.
func childOf(edge string) string { return strings.ReplaceAll(afterDots(edge, 2), ":", ".") }

// countOf returns the job's id in the subject of its bits.
func countOf(subject string) string { return strings.ReplaceAll(afterDots(subject, 1), ":", ".") }

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
	// Each job's parents: those of the graph first, each once, then those
	// already in the queue, whose edges register writes. A parent of the
	// graph lists its children in its own record, which costs no message.
	at := make(map[string]int, len(g.nodes)) // each job's place in g.nodes, by id
	for i, info := range infos {
		at[info.ID] = i
	}
	registers := make([]int, len(g.nodes)) // where each job's parents already in the queue start
	for i, n := range g.nodes {
		info := infos[i]
		info.Parents = unique(nil, n.after, func(p string) string { return ids[p] })
		registers[i] = len(info.Parents)
		for k, p := range info.Parents {
			parent := infos[at[p]]
			parent.Waiters = append(parent.Waiters, Waiter{ID: info.ID, Place: k})
		}
		info.Parents = unique(info.Parents, n.job.Options.After, func(id string) string { return id })
		if len(info.Parents) > MaxParents {
			return nil, fmt.Errorf("queue: enqueue %s %s: %d parents: at most %d", info.Kind, info.ID, len(info.Parents), MaxParents)
		}
		if len(info.Parents) == 0 {
			info.Parents = nil
		}
	}
	for _, info := range infos {
		for i, w := range info.Waiters {
			info.Waiters[i].Parents = len(infos[at[w.ID]].Parents)
		}
	}
	// The jobs that wait, what they wait with, and those that do not.
	var flows, waiting, roots []*nats.Msg
	for _, i := range order {
		info := infos[i]
		if err := c.ensureConsumer(ctx, info.Queue, info.Priority); err != nil {
			return nil, fmt.Errorf("queue: enqueue %s %s: %w", info.Kind, info.ID, err)
		}
		// An id the caller chose is stored only if no job has it (checkIDs
		// looked, but another may have come since); one made here is new.
		chosen := g.nodes[i].job.Options.ID != ""
		if len(info.Parents) == 0 {
			m, err := newJobMsg(info, chosen)
			if err != nil {
				return nil, fmt.Errorf("queue: enqueue %s %s: %w", info.Kind, info.ID, err)
			}
			roots = append(roots, m)
			continue
		}
		info.State, info.Registering = Pending, len(g.nodes[i].job.Options.After) > 0
		rec, err := c.newWaitMsg(info)
		if err != nil {
			return nil, fmt.Errorf("queue: enqueue %s %s: %w", info.Kind, info.ID, err)
		}
		if chosen {
			expectLast(rec, info.ID, 0)
		}
		waiting = append(waiting, rec)
		flows = append(flows, &nats.Msg{Subject: countSubject(info.ID), Data: newBits(len(info.Parents)), Header: nats.Header{}})
	}
	for _, group := range [][]*nats.Msg{flows, waiting, roots} {
		if err := c.storeGroup(ctx, group); err != nil {
			c.unstore(slices.Concat(flows, waiting, roots))
			return nil, fmt.Errorf("queue: enqueue graph: %w", err)
		}
	}
	for _, info := range infos {
		if len(info.Parents) == 0 {
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
	seen := make(map[string]bool, len(ids)+len(names))
	for _, s := range ids {
		seen[s] = true
	}
	for _, n := range names {
		if s := id(n); !seen[s] {
			seen[s] = true
			ids = append(ids, s)
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
		ids := make([]string, len(left))
		for i, k := range left {
			ids[i] = child.Parents[k]
		}
		have, revs, err := c.recordsAt(ctx, ids)
		if err != nil {
			return err
		}
		msgs := make([]*nats.Msg, len(left))
		pinfos := make([]*Info, len(left))
		for i, k := range left {
			p := child.Parents[k]
			if have[p] == nil {
				return fmt.Errorf("parent %s: %w", p, ErrNotFound)
			}
			msgs[i], pinfos[i] = newEdgeMsg(p, child.ID, k), have[p]
			expectLast(msgs[i], p, revs[p])
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
		return c.settle(ctx, cur)
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
		was := waitSubject(cur)
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
		if err == nil && was != m.Subject {
			// Skipped, or waiting again: the record moved. If this
			// fails, the record left is older, and read as such.
			if err := c.stream.Purge(ctx, jetstream.WithPurgeSubject(was)); err != nil {
				c.log.Warn("queue: removing a waiting job's record that moved", "subject", was, "error", err)
			}
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
	return decodeBits(id, *m)
}

// decodeBits decodes job id's bits read from the stream.
func decodeBits(id string, m storedMsg) (*bits, error) {
	n, size := binary.Uvarint(m.data)
	if size <= 0 || len(m.data)-size < (int(n)+7)/8 {
		return nil, fmt.Errorf("job %s: bad record of its parents", id)
	}
	return &bits{seq: m.seq, n: int(n), set: m.data[size:]}, nil
}

// with returns b with the bits of the given parents set too.
func (b *bits) with(ks []int) *bits {
	set := slices.Clone(b.set)
	for _, k := range ks {
		if k >= 0 && k < b.n {
			set[k/8] |= 1 << (k % 8)
		}
	}
	return &bits{seq: b.seq, n: b.n, set: set}
}

// msg is job id's bits to store, expecting those read.
func (b *bits) msg(id string) *nats.Msg {
	m := &nats.Msg{Subject: countSubject(id), Data: append(binary.AppendUvarint(nil, uint64(b.n)), b.set...), Header: nats.Header{}}
	expectSeq(m, m.Subject, b.seq)
	return m
}

// setBits sets the bits of the given parents of a job, each once, and
// reports whether every parent's is set now.
func (c *Client) setBits(ctx context.Context, id string, ks ...int) (bool, error) {
	for {
		b, err := c.readBits(ctx, id)
		if err != nil || b == nil {
			return false, err
		}
		set := b.with(ks)
		if slices.Equal(set.set, b.set) {
			return b.all(), nil
		}
		err = c.storeGroup(ctx, []*nats.Msg{set.msg(id)})
		if wrongLastSequence(err) {
			continue // another parent's meanwhile: read again
		}
		return set.all(), err
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
		job, err := releaseMsg(cur, rev)
		if err != nil {
			return err
		}
		err = c.storeGroup(ctx, []*nats.Msg{job})
		if wrongLastSequence(err) {
			continue // changed meanwhile: look again
		}
		if err != nil {
			return err
		}
		c.released(cur)
		return nil
	}
}

// releaseMsg is the job message that puts a pending job in its queue,
// stored only if its record is still the one at sequence rev.
func releaseMsg(cur *Info, rev uint64) (*nats.Msg, error) {
	job := *cur
	job.State, job.UpdatedAt = Queued, time.Now()
	if job.RunAt.After(job.UpdatedAt) {
		job.State = Scheduled
	}
	m, err := newJobMsg(&job, false)
	if err != nil {
		return nil, err
	}
	expectLast(m, cur.ID, rev)
	return m, nil
}

// released counts a job released, and removes what it waited with; if
// that fails, the record is older than the job's message, and read as
// such.
func (c *Client) released(job *Info) {
	c.counts.of(job.Queue).enqueued.Add(1)
	c.tidier.add(job)
}

// A tidier removes what released jobs waited with — a job's record as it
// waited, and its bits — on a goroutine of its own, off the path from a
// parent's outcome to its children's release. What is not removed (the
// client closes first) is older than the job's message, and read as such.
type tidier struct {
	c      *Client
	mu     sync.Mutex
	todo   []*Info
	closed bool
	more   chan struct{} // told, without blocking, when todo grows or the tidier closes
	done   chan struct{}
}

func newTidier(c *Client) *tidier {
	t := &tidier{c: c, more: make(chan struct{}, 1), done: make(chan struct{})}
	go t.run()
	return t
}

// add hands released jobs to the tidier. It does not block.
func (t *tidier) add(jobs ...*Info) {
	if len(jobs) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.todo = append(t.todo, jobs...)
	select {
	case t.more <- struct{}{}:
	default:
	}
}

func (t *tidier) run() {
	defer close(t.done)
	for range t.more {
		t.mu.Lock()
		todo, closed := t.todo, t.closed
		t.todo = nil
		t.mu.Unlock()
		for _, job := range todo {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			t.tidy(ctx, job)
			cancel()
		}
		if closed {
			return
		}
	}
}

func (t *tidier) tidy(ctx context.Context, job *Info) {
	for _, subject := range []string{waitSubject(job), countSubject(job.ID)} {
		if err := t.c.stream.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
			t.c.log.Warn("queue: removing what a released job waited with", "subject", subject, "error", err)
		}
	}
}

// close tidies what was handed over, then stops.
func (t *tidier) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	select {
	case t.more <- struct{}{}:
	default:
	}
	<-t.done
}

// edge is an edge read from the stream.
type edge struct {
	child string
	k     int // the parent's place in the child's Parents
}

// maxLasts is the most messages a read of the last message of each of
// several subjects returns.
const maxLasts = 1024

// edges returns the edges from a parent. They are found by the stream's
// index of subjects (the last message of each subject that matches), up to
// maxLasts of them; a parent with more is read in the stream's order,
// which takes longer.
func (c *Client) edges(ctx context.Context, parent string) ([]edge, error) {
	filter := edgeFilter(parent)
	msgs, err := c.lasts(ctx, []string{filter}, maxLasts)
	if err != nil && strings.Contains(err.Error(), "413") {
		msgs, err = c.scan(ctx, filter)
	}
	if err != nil {
		return nil, err
	}
	return decodeEdges(msgs)
}

// decodeEdges decodes edges read from the stream.
func decodeEdges(msgs []storedMsg) ([]edge, error) {
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

// settle passes finished jobs' outcomes on to the jobs that wait for
// them, and theirs on: on success, a parent's bit is set in each child's,
// and a child whose bits are all set is released; on failure, each child
// is skipped, and its children in turn. It may be called again for the
// same jobs, and does again only what was not done.
//
// The successes are passed on together: one read finds their edges, one
// their children's bits, one the records of those to release, and one
// group of writes stores what changed, however many parents there are (a
// worker passes on the outcomes stored while it passed on the last ones).
func (c *Client) settle(ctx context.Context, parents ...*Info) error {
	released, err := c.passOn(ctx, parents)
	if err != nil {
		return err
	}
	// The children's bits and releases were stored without waiting for
	// the disk: the children start at once, and the next sync makes them
	// durable. Until it has, the parents are not settled, so that a power
	// cut meanwhile has them passed on again; and what the children
	// waited with is removed only then.
	if !slices.ContainsFunc(parents, func(p *Info) bool { return p.State == Succeeded }) {
		return nil // a failure's writes are synced
	}
	if err := c.commit.flush(ctx); err != nil {
		return err
	}
	c.tidier.add(released...)
	return nil
}

// passOn is settle but for its end: it returns the children it released
// (or found released), whose record and bits are to be removed once the
// committer has synced what it stored.
func (c *Client) passOn(ctx context.Context, parents []*Info) ([]*Info, error) {
	var ok []*Info
	for _, p := range parents {
		if p.State == Succeeded {
			ok = append(ok, p)
		}
	}
	var released []*Info
	for start := 0; start < len(ok); start += settleChunk {
		r, err := c.succeed(ctx, ok[start:min(start+settleChunk, len(ok))])
		released = append(released, r...)
		if err != nil {
			return nil, err
		}
	}
	for _, p := range parents {
		if p.State != Succeeded {
			if err := c.fail(ctx, p); err != nil {
				return nil, err
			}
		}
	}
	return released, nil
}

// settleChunk is the most parents whose successes are read and written
// together.
const settleChunk = 256

// succeed passes on the success of parents, and returns the children
// whose record and bits are to be removed once what it stored is durable.
func (c *Client) succeed(ctx context.Context, parents []*Info) ([]*Info, error) {
	ks, small, err := c.childrenOf(ctx, parents, false)
	if err != nil {
		return nil, err
	}
	children := slices.Sorted(maps.Keys(ks))
	var released []*Info
	for start := 0; start < len(children); start += settleChunk {
		r, err := c.setAll(ctx, children[start:min(start+settleChunk, len(children))], ks, small)
		released = append(released, r...)
		if err != nil {
			return released, err
		}
	}
	return released, nil
}

// setAll sets the bits ks[id] of each of children, and releases those
// whose bits are then all set. It returns the children whose record and
// bits are to be removed once what it stored is durable. One read finds
// their bits, and the records of those with few parents; one more the
// records of the others to release (a child's record names every parent:
// it can be big); and one group of writes, not synced on its own, stores
// what changed. A child changed meanwhile is done again alone.
func (c *Client) setAll(ctx context.Context, children []string, ks map[string][]int, small map[string]bool) ([]*Info, error) {
	// The bits of each, and the records of those with few parents.
	subjects := make([]string, 0, len(children))
	n := 0
	for _, id := range children {
		subjects = append(subjects, countSubject(id))
		n++
		if small[id] {
			// Up to three subjects match a job's id: its job's, its
			// record's, and the one it waits in.
			subjects = append(subjects, idSubject(id))
			n += 3
		}
	}
	msgs, err := c.lasts(ctx, subjects, n)
	if err != nil {
		return nil, err
	}
	bitsOf := make(map[string]*bits, len(children))
	recs, revs := make(map[string]*Info), make(map[string]uint64)
	var records []storedMsg
	for _, m := range msgs {
		if !strings.HasPrefix(m.subject, flowRoot+".") {
			records = append(records, m)
			continue
		}
		id := countOf(m.subject)
		if bitsOf[id], err = decodeBits(id, m); err != nil {
			return nil, err
		}
	}
	keepNewest(recs, revs, records)
	// The records of the others to release, and of those without bits:
	// they were released before, unless the server that answered is
	// behind the others (a cluster's follower).
	var read []string
	for _, id := range children {
		if b := bitsOf[id]; !small[id] && (b == nil || b.with(ks[id]).all()) {
			read = append(read, id)
		}
	}
	more, moreRevs, err := c.recordsAt(ctx, read)
	if err != nil {
		return nil, err
	}
	maps.Copy(recs, more)
	maps.Copy(revs, moreRevs)
	for _, id := range children {
		if cur := recs[id]; bitsOf[id] == nil && cur != nil && cur.State == Pending {
			return nil, fmt.Errorf("job %s waits, but the record of its parents was not found: the server read is behind; trying again", id)
		}
	}
	// A child whose other bits are all set is released, if it waits for
	// nothing else; the others have their bits set.
	var writes []*nats.Msg
	var tidy []*Info
	var wrote []string
	released := make(map[string]*Info)
	// A skipped child whose bits are all set now may be waiting again by
	// the time they are stored (its failed parent retried, unskip setting
	// it pending and finding a bit not yet stored): it is looked at again
	// after, as unskip looks at the bits after it sets the record.
	recheck := make(map[string]bool)
	for _, id := range children {
		b := bitsOf[id]
		if b == nil {
			continue // never waited, or released before
		}
		set := b.with(ks[id])
		switch cur := recs[id]; {
		case cur != nil && set.all() && cur.State != Pending && cur.State != Skipped:
			// Released before, by a parent whose settling failed after:
			// what the child waited with is left to remove.
			left := *cur
			left.State = Pending
			tidy = append(tidy, &left)
		case cur != nil && set.all() && cur.State == Pending && !cur.Registering:
			m, err := releaseMsg(cur, revs[id])
			if err != nil {
				return nil, err
			}
			writes, wrote, released[id] = append(writes, m), append(wrote, id), cur
		case !slices.Equal(set.set, b.set):
			writes, wrote = append(writes, set.msg(id)), append(wrote, id)
			recheck[id] = set.all() && cur != nil && cur.State == Skipped
		}
	}
	if len(writes) == 0 {
		return tidy, nil
	}
	errs, err := c.commit.storeLazy(ctx, writes)
	if err != nil {
		return nil, err
	}
	done := tidy
	for i, id := range wrote {
		switch {
		case wrongLastSequence(errs[i]):
			all, err := c.setBits(ctx, id, ks[id]...)
			if err == nil && all {
				err = c.release(ctx, id)
			}
			if err != nil {
				return done, fmt.Errorf("job %s: %w", id, err)
			}
		case errs[i] != nil:
			return done, fmt.Errorf("job %s: %w", id, errs[i])
		case released[id] != nil:
			c.counts.of(released[id].Queue).enqueued.Add(1)
			done = append(done, released[id])
		case recheck[id]:
			if err := c.release(ctx, id); err != nil {
				return done, fmt.Errorf("job %s: %w", id, err)
			}
		}
	}
	return done, nil
}

// children returns the children of parents, each with the places in its
// Parents of those parents: those of their graph, in their records, and
// those enqueued after them, found by their edges — of every parent if
// lookAll is set, else of those whose records say there are some.
func (c *Client) children(ctx context.Context, parents []*Info, lookAll bool) (map[string][]int, error) {
	ks, _, err := c.childrenOf(ctx, parents, lookAll)
	return ks, err
}

// smallRecord is the most parents of a child whose record is read with
// its bits, rather than after them (when it is to be released).
const smallRecord = 16

// childrenOf is children, and the set of those known to have few parents
// (smallRecord at most), whose records are small.
func (c *Client) childrenOf(ctx context.Context, parents []*Info, lookAll bool) (map[string][]int, map[string]bool, error) {
	ks := make(map[string][]int)
	small := make(map[string]bool)
	var filters []string
	var look []*Info
	for _, p := range parents {
		for _, w := range p.Waiters {
			ks[w.ID] = append(ks[w.ID], w.Place)
			if w.Parents <= smallRecord {
				small[w.ID] = true
			}
		}
		if lookAll || p.Children {
			filters, look = append(filters, edgeFilter(p.ID)), append(look, p)
		}
	}
	if len(filters) == 0 {
		return ks, small, nil
	}
	msgs, err := c.lasts(ctx, filters, maxLasts)
	var es []edge
	if err == nil {
		es, err = decodeEdges(msgs)
	} else if strings.Contains(err.Error(), "413") {
		// More edges than a read returns: a parent at a time.
		for _, p := range look {
			pes, err := c.edges(ctx, p.ID)
			if err != nil {
				return nil, nil, fmt.Errorf("job %s: children: %w", p.ID, err)
			}
			es = append(es, pes...)
		}
		err = nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("children: %w", err)
	}
	for _, e := range es {
		ks[e.child] = append(ks[e.child], e.k)
	}
	return ks, small, nil
}

// Children returns the ids of the jobs that wait for each of the given
// jobs — those of its graph and those enqueued after it with
// [Options.After] — by id, in no order; a job nothing waits for has none.
// With each job's Info.Parents, it is what a graph's drawing needs.
func (c *Client) Children(ctx context.Context, ids []string) (map[string][]string, error) {
	infos, err := c.records(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("queue: children: %w", err)
	}
	out := make(map[string][]string, len(infos))
	for _, info := range infos {
		ks, err := c.children(ctx, []*Info{info}, true)
		if err != nil {
			return nil, fmt.Errorf("queue: job %s: %w", info.ID, err)
		}
		if len(ks) > 0 {
			out[info.ID] = slices.Sorted(maps.Keys(ks))
		}
	}
	return out, nil
}

// fail passes on a parent's failure: its children are skipped, and their
// children in turn.
func (c *Client) fail(ctx context.Context, parent *Info) error {
	todo := []*Info{parent}
	for len(todo) > 0 {
		p := todo[0]
		todo = todo[1:]
		ks, err := c.children(ctx, []*Info{p}, true)
		if err != nil {
			return fmt.Errorf("job %s: %w", p.ID, err)
		}
		for _, id := range slices.Sorted(maps.Keys(ks)) {
			child, err := c.skipFor(ctx, p, id)
			if err != nil {
				return fmt.Errorf("job %s: child %s: %w", p.ID, id, err)
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
		info, _, err := c.info(ctx, p)
		if err != nil {
			return err
		}
		ks, err := c.children(ctx, []*Info{info}, true)
		if err != nil {
			return fmt.Errorf("job %s: %w", p, err)
		}
		for _, id := range slices.Sorted(maps.Keys(ks)) {
			pending, err := c.unskipFor(ctx, p, id)
			if err != nil {
				return fmt.Errorf("job %s: child %s: %w", p, id, err)
			}
			if pending {
				if err := c.release(ctx, id); err != nil {
					return fmt.Errorf("job %s: child %s: %w", p, id, err)
				}
				todo = append(todo, id)
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
