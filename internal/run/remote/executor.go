package remote

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goherd/herd/internal/replace"
	"github.com/goherd/herd/internal/run"
	"github.com/goherd/herd/queue"
)

// enqueueBatch is the most jobs herd run --queue enqueues at once.
const enqueueBatch = 256

// Executor is herd run --queue: the jobs go on the queue, herd work
// processes run them, and herd run prints their output and writes their
// job log rows as they finish, as if they had run here. With Attach, it
// shows the jobs of an earlier run instead.
type Executor struct {
	// Open connects to the queue, with log for the queue's messages.
	Open        func(ctx context.Context, log io.Writer) (Client, error)
	QueueName   string // the named queue the jobs go on
	URL         string // the queue's, for the hint to start a worker
	Attach      string // the id of an earlier run to show
	JobsIgnored bool   // -j was given, which has no effect here
	// HostsStarted says that its workers are being started for it (-S):
	// no hint to start one.
	HostsStarted bool
	// RunID is the id of a new run; empty means a fresh one (NewRunID).
	RunID string
	// SubmitOnly stores the run's jobs, prints the run's id on Out, and
	// returns, leaving the run to the workers (herd run --detach).
	SubmitOnly bool
	Out        io.Writer
	// After are earlier runs every job of which must succeed before any
	// job of this run starts (--after); AfterEach is an earlier run whose
	// job N must succeed before job N of this one starts (--after-each).
	After     []string
	AfterEach string
	// Key, if set, gives each job its key for the queue's limits
	// (--key): expanded with the job's inputs.
	Key *replace.Template

	complete   bool // every job of the run was seen finished
	detachOnce sync.Once
	detached   chan struct{} // closed by Detach
	detachSig  os.Signal     // the signal that detached, once detached is closed
	left       chan error    // Leave's error
	run        string        // the run's id
}

// remote is a run on the queue in progress.
type remote struct {
	*Executor
	r      *run.Runner
	client Client

	mu    sync.Mutex // serializes the writes of state
	state State

	barrier string         // the id of the job that this run's jobs wait for (--after)
	each    map[int]string // by job number, the id of the job each waits for (--after-each)

	enqueued chan []run.Job // each batch, once the queue has it; closed by the submitter
	subErr   error          // why the submitter stopped early, if it did; read once enqueued is closed
	gone     chan struct{}  // closed when the collector stops listening

	// Attached to a run whose submitter stopped while it enqueued a batch:
	// the batch's jobs, each of which may be on the queue or not, and
	// those found on it, at the first look.
	sending  []int
	sent     map[int]bool
	lookedAt time.Time
}

// NewRunID returns a fresh run id.
func NewRunID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Execute sends the jobs to the queue and collects their outcomes; with
// Attach, it only collects those of an earlier run. It returns an error
// only if the run could not start.
func (e *Executor) Execute(ctx context.Context, r *run.Runner, jobs iter.Seq[run.Job]) error {
	c, err := e.Open(ctx, r.Log())
	if err != nil {
		return err
	}
	defer c.Close()
	rm := &remote{Executor: e, r: r, client: c, enqueued: make(chan []run.Job, 4), gone: make(chan struct{})}
	if e.JobsIgnored {
		r.Warn("-j has no effect with --queue: each herd work runs its own number of jobs at once")
	}
	e.run = e.Attach
	if e.run != "" {
		return rm.attach(ctx)
	}
	e.run = cmp.Or(e.RunID, NewRunID())
	if jobs, err = rm.waitFor(ctx, jobs); err != nil {
		return err
	}
	if err := rm.putBase(ctx); err != nil {
		return err
	}
	err = rm.update(ctx, func(st *State) {
		*st = State{Enqueueing: true, Command: r.Config().Template.String(), Started: time.Now()}
	})
	if err != nil {
		return err
	}
	if e.SubmitOnly {
		return rm.submitOnly(ctx, jobs)
	}
	// The watch starts before the first job is enqueued, so that no
	// outcome can be missed.
	w := &runWatch{c: rm.client, pattern: rm.run + ".*"}
	if err := w.start(ctx); err != nil {
		return err
	}
	r.Warn("run %s: the jobs go to the queue; if this process stops, they still run: see them with --attach %s", rm.run, rm.run)

	var wg sync.WaitGroup
	wg.Go(func() { rm.submit(ctx, jobs) })
	rm.collect(ctx, w, -1, nil)
	close(rm.gone)
	if err := w.stop(); err != nil {
		r.Warn("%v", err)
	}
	wg.Wait()
	return nil
}

// Detach leaves the run to the workers: Execute returns at once. It is
// called from one goroutine, the runner's signal handler.
func (e *Executor) Detach(sig os.Signal) {
	select {
	case <-e.detachedCh():
	default:
		e.detachSig = sig
		close(e.detached)
	}
}

// Complete reports, once Execute has returned, whether it saw every job
// of the run finish.
func (e *Executor) Complete() bool { return e.complete }

// Detached reports whether the run was left to the workers (Detach).
func (e *Executor) Detached() bool {
	select {
	case <-e.detachedCh():
		return true
	default:
		return false
	}
}

// detachedCh is closed by Detach. The zero Executor is ready to use, so
// the channels are made on first use.
func (e *Executor) detachedCh() chan struct{} {
	e.detachOnce.Do(func() { e.detached, e.left = make(chan struct{}), make(chan error, 1) })
	return e.detached
}

// Leave ends the run with err, its jobs left undone: no worker is left to
// run them. It may be called from any goroutine, once.
func (e *Executor) Leave(err error) {
	e.detachedCh()
	select {
	case e.left <- err:
	default:
	}
}

// Client is what the executor uses of a queue: a *queue.Client (see
// Connected), or a fake in tests.
type Client interface {
	Watch(ctx context.Context, pattern string) (Watcher, error)
	EnqueueBatch(ctx context.Context, jobs []queue.NewJob) ([]string, error)
	Lost(ctx context.Context, ids []string) ([]string, error)
	PutMeta(ctx context.Context, key string, value []byte) error
	Meta(ctx context.Context, key string) ([]byte, error)
	Stats(ctx context.Context) (*queue.Stats, error)
	FileStore
	Close() error
}

// Watcher is what the executor uses of a *queue.Watcher.
type Watcher interface {
	Updates() <-chan *queue.Info
	Stop() error
}

// Connected is a *queue.Client as the executor's Client.
func Connected(c *queue.Client) Client { return connected{c} }

type connected struct{ *queue.Client }

func (c connected) Watch(ctx context.Context, pattern string) (Watcher, error) {
	w, err := c.Client.Watch(ctx, pattern)
	if err != nil {
		return nil, err // not a nil *queue.Watcher in a Watcher
	}
	return w, nil
}

// runWatch watches the records of a run's jobs, and can start again.
type runWatch struct {
	c       Client
	pattern string
	infos   <-chan *queue.Info
	w       Watcher
}

func (w *runWatch) start(ctx context.Context) error {
	var err error
	if w.w, err = w.c.Watch(ctx, w.pattern); err != nil {
		w.infos = nil // nothing to receive until the next start
		return err
	}
	w.infos = w.w.Updates()
	return nil
}

func (w *runWatch) stop() error {
	if w.w == nil {
		return nil
	}
	defer func() { w.w = nil }()
	return w.w.Stop()
}

// update changes the run's state and stores it. A stop stored by another
// program (the dashboard, remote.Stop) is kept.
func (rm *remote) update(ctx context.Context, change func(*State)) error {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	if rm.state.Stopped != "now" {
		if stored, err := ReadState(ctx, rm.client, rm.run); err == nil &&
			(stored.Stopped == "now" || stored.Stopped == "soon" && rm.state.Stopped == "") {
			rm.state.Stopped = stored.Stopped
		}
	}
	change(&rm.state)
	b, err := json.Marshal(rm.state)
	if err != nil {
		return err
	}
	return rm.client.PutMeta(ctx, RunKey(rm.run), b)
}

// submit enqueues the jobs in batches: as many as the input has ready, up
// to enqueueBatch at a time. It closes rm.enqueued when done.
func (rm *remote) submit(ctx context.Context, jobs iter.Seq[run.Job]) {
	defer close(rm.enqueued)
	r := rm.r
	ready := make(chan run.Job, enqueueBatch)
	readCtx, stopReading := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopReading()
	wg.Go(func() {
		defer close(ready)
		for j := range jobs {
			select {
			case ready <- j:
			case <-readCtx.Done():
				return
			}
		}
	})

	fail := func(err error) {
		rm.subErr = err
		if !errors.Is(err, queue.ErrFull) { // a full queue is said once, in collect, with what to do
			r.Fail(err)
		}
	}
	for j := range ready {
		batch := []run.Job{j}
	more:
		for len(batch) < enqueueBatch {
			select {
			case j, ok := <-ready:
				if !ok {
					break more
				}
				batch = append(batch, j)
			default:
				break more
			}
		}
		if r.Stopping() {
			break
		}
		seqs := make([]int, len(batch))
		for i, j := range batch {
			seqs[i] = j.Seq
		}
		if err := rm.update(ctx, func(st *State) { st.Sending = seqs }); err != nil {
			fail(err) // the run's count would lag behind its jobs
			break
		}
		if err := rm.enqueue(ctx, batch); err != nil {
			fail(err)
			break
		}
		if err := rm.update(ctx, func(st *State) {
			st.Jobs, st.Sending, st.Enqueued = st.Jobs+len(batch), nil, addSeqs(st.Enqueued, seqs)
		}); err != nil {
			r.Warn("%v", err)
		}
		select {
		case rm.enqueued <- batch:
		case <-rm.gone: // left to the workers: enqueue the rest, unseen
		}
	}
	var n int
	if err := rm.update(ctx, func(st *State) { st.Enqueueing, n = false, st.Jobs }); err != nil && !errors.Is(err, queue.ErrFull) {
		r.Warn("%v", err)
	}
	if rm.subErr == nil && !r.Stopping() {
		r.Warn("run %s: all %d jobs are on the queue", rm.run, n)
	}
}

// enqueue puts a batch of jobs on the queue.
func (rm *remote) enqueue(ctx context.Context, batch []run.Job) error {
	cfg := rm.r.Config()
	nj := make([]queue.NewJob, len(batch))
	for i, j := range batch {
		cj := Job{Run: rm.run, Seq: j.Seq, Args: j.Args, Line: j.Line, Shell: cfg.Shell,
			Attempts: cfg.Attempts, Timeout: cfg.Timeout, TermSeq: cfg.TermSeq, Stdin: j.Stdin, Nice: cfg.Nice, Env: cfg.Env, Pass: cfg.Pass,
			Base: cfg.BaseFiles, Cleanup: cfg.Cleanup, Workdir: cfg.Workdir.Name(j, true)}
		if err := rm.putFiles(ctx, &cj); err != nil {
			return err
		}
		payload, err := json.Marshal(cj)
		if err != nil {
			return err
		}
		nj[i] = queue.NewJob{Kind: Kind, Payload: payload,
			Options: queue.Options{ID: rm.run + "." + strconv.Itoa(j.Seq), Queue: rm.QueueName, After: rm.parentsOf(j.Seq)}}
		if rm.Key != nil {
			nj[i].Options.Key = rm.Key.Expand(j.Args, j.Seq, 0, true)
		}
	}
	_, err := rm.client.EnqueueBatch(ctx, nj)
	return err
}

// collector follows the jobs of a run to their outcomes.
type collector struct {
	*remote
	attached     bool
	order        []int // the jobs' numbers, in the order they were enqueued
	jobsBy       map[int]run.Job
	early        []*queue.Info // outcomes of jobs whose batch was not confirmed yet
	seen         map[int]bool
	started      map[int]bool    // with -t: the jobs whose line was printed
	stopped      string          // how the run was stopped, once it was
	fullSince    time.Time       // when the queue was seen full
	seenWhenFull int             // len(seen) then
	suspects     map[string]bool // jobs missing from the queue at the last look
}

// collect receives the outcomes of the run's jobs and hands them to the
// runner, until every job enqueued has one, or the run is left to the
// workers. want is the number of jobs of a run attached to, and known
// their numbers if the run's state has them; want -1 means this process
// enqueues them, and they come through rm.enqueued.
func (rm *remote) collect(ctx context.Context, w *runWatch, want int, known []int) {
	r := rm.r
	c := &collector{remote: rm, attached: want >= 0, order: known, seen: map[int]bool{}, started: map[int]bool{}, suspects: map[string]bool{}}
	if !c.attached {
		c.jobsBy = map[int]run.Job{}
	}
	// If nothing has come back after a while, say so if no worker is
	// taking jobs from the queue: a run without workers waits forever.
	hint := time.NewTimer(noWorkerHint)
	defer hint.Stop()
	// A watch that has been silent a while, with jobs still out, starts
	// again, in case it lost its way in a failover: it then sends every
	// record again, and the records seen already are skipped. The wait
	// doubles each time nothing new comes, up to a minute.
	quiet := stallFirst
	stall := time.NewTimer(quiet)
	defer stall.Stop()
	enqueued := rm.enqueued
	// Stopped by --halt, a signal or bad input: no job of the run starts
	// any more; killed, those running are killed.
	stopping, killed := r.Stopped(), r.JobContext().Done()
	for {
		if want >= 0 && len(c.seen) >= want && !c.moreSent(ctx, &want) {
			rm.complete = true
			return
		}
		if enqueued == nil && want < 0 {
			if errors.Is(rm.subErr, queue.ErrFull) {
				// Their outcomes could not be stored either: waiting for
				// them would wait for an operator.
				r.Fail(fmt.Errorf("run %s: the queue is full: its server stores no more (its --max-store, or its disk); the %d jobs on it go on as the workers can store their outcomes: make room (herd queue purge, finished jobs expiring, a bigger disk or limit), then see them with --attach %s",
					rm.run, len(c.order), rm.run))
				return
			}
			want = len(c.order) // all in: wait for each
			continue
		}
		select {
		case <-stopping:
			stopping = nil
			c.stopRun("soon")
		case <-killed:
			killed = nil
			c.stopRun("now")
		case <-rm.detachedCh():
			r.Warn("got %v: leaving run %s to the workers; see it with --attach %s", rm.detachSig, rm.run, rm.run)
			return
		case err := <-rm.left:
			r.Fail(err)
			return
		case batch, ok := <-enqueued:
			if !ok {
				enqueued = nil
				continue
			}
			c.confirmed(batch)
		case info, ok := <-w.infos:
			if !ok {
				r.Fail(fmt.Errorf("run %s: lost the queue; see the rest with --attach %s", rm.run, rm.run))
				return
			}
			quiet = stallFirst
			stall.Reset(quiet)
			c.take(info)
		case <-stall.C:
			if !c.stalled(ctx, w) {
				return
			}
			quiet = min(2*quiet, time.Minute)
			stall.Reset(quiet)
		case <-hint.C:
			if len(c.seen) == 0 && !rm.HostsStarted {
				rm.hintWorkers()
			}
		}
	}
}

// moreSent looks again for the jobs of the batch an attached run's
// submitter was enqueueing when it stopped, and adds to want those found
// on the queue since the last look: a server may store what a killed
// submitter sent after the first look, which is why the second is made no
// sooner than sentSettle after it. It reports whether it found any.
func (c *collector) moreSent(ctx context.Context, want *int) bool {
	if len(c.sending) == 0 {
		return false
	}
	select {
	case <-time.After(time.Until(c.lookedAt.Add(sentSettle))):
	case <-ctx.Done():
		return false
	}
	on, err := c.existing(ctx, c.sending)
	if err != nil {
		c.r.Warn("run %s: looking for the last jobs its submitter sent: %v", c.run, err)
		return false
	}
	found := false
	for _, seq := range on {
		if !c.sent[seq] {
			c.sent[seq], found = true, true
			c.order = append(c.order, seq)
			*want++
		}
	}
	if found {
		c.r.SetTotal(*want)
	}
	return found
}

// sentSettle is how long after a killed submitter's last batch was looked
// for the server is taken to have stored all that reached it.
const sentSettle = 2 * time.Second

// confirmed takes a batch of jobs that the queue has, and the outcomes of
// its jobs that came before it.
func (c *collector) confirmed(batch []run.Job) {
	for _, j := range batch {
		c.order = append(c.order, j.Seq)
		c.jobsBy[j.Seq] = j
	}
	waiting := c.early
	c.early = nil
	for _, info := range waiting {
		c.take(info)
	}
}

// take hands a finished job's outcome to the runner, once; with -t, a
// running job's line.
func (c *collector) take(info *queue.Info) {
	if !info.State.Finished() {
		if info.State == queue.Running && c.r.Config().Verbose {
			c.starting(info)
		}
		return
	}
	seq, err := strconv.Atoi(strings.TrimPrefix(info.ID, c.run+"."))
	if err != nil || c.seen[seq] {
		return
	}
	j, known := c.jobsBy[seq]
	if !c.attached && !known { // its batch is not confirmed yet
		c.early = append(c.early, info)
		return
	}
	c.seen[seq] = true
	c.bringBack(info)
	o := c.outcome(info, j)
	if !o.Skipped && !c.started[seq] {
		c.r.Starting(o) // for -t: a job that ended before it was seen running
	}
	c.r.Done(o)
}

// starting prints a running job's command line for -t, once. A worker
// records a job as running once it has run 50ms: shorter jobs' lines come
// as they end. The slot ({%}) is not known yet: it reads 0.
func (c *collector) starting(info *queue.Info) {
	seq, err := strconv.Atoi(strings.TrimPrefix(info.ID, c.run+"."))
	if err != nil || c.seen[seq] || c.started[seq] {
		return
	}
	j := c.jobsBy[seq]
	if j.Line == "" {
		var cj Job
		if json.Unmarshal(info.Payload, &cj) != nil {
			return
		}
		j.Line = cj.Line
	}
	c.started[seq] = true
	c.r.Starting(&run.Outcome{Job: j, Line: run.Shown(j.Line, 0)})
}

// stopRun tells the workers that the run is stopped: "soon", start none of
// its jobs; "now", kill those running too.
func (c *collector) stopRun(how string) {
	if c.stopped == "now" || c.stopped == how {
		return
	}
	c.stopped = how
	if err := c.update(context.Background(), func(st *State) { st.Stopped = how }); err != nil {
		c.r.Warn("stopping the run: %v", err)
	}
}

// stalled looks into a run from which nothing came for a while: a full
// queue, jobs gone from the queue, or a watch that lost its way, which it
// starts again. It reports false if the run is to be left.
func (c *collector) stalled(ctx context.Context, w *runWatch) bool {
	r := c.r
	// A full queue is one reason, which a write of the run's state shows.
	probe, cancel := context.WithTimeout(ctx, 3*time.Second)
	err := c.update(probe, func(*State) {})
	cancel()
	if errors.Is(err, queue.ErrFull) {
		switch {
		case c.fullSince.IsZero() || len(c.seen) > c.seenWhenFull:
			c.fullSince, c.seenWhenFull = time.Now(), len(c.seen)
			r.Warn("run %s: the queue is full: the workers cannot store the outcomes of its jobs (%v)", c.run, err)
		case time.Since(c.fullSince) > fullGiveUp:
			r.Fail(fmt.Errorf("run %s: the queue has been full for %v, with no job finishing; leaving the run: see it with --attach %s once the queue has room", c.run, fullGiveUp, c.run))
			return false
		}
	} else if err == nil { // a probe that timed out on a busy server says nothing
		c.fullSince = time.Time{}
	}
	c.takeLost(ctx)
	if err := w.stop(); err != nil {
		r.Warn("%v", err)
	}
	if err := w.start(ctx); err != nil {
		r.Warn("watching the run: %v; trying again", err)
	}
	return true
}

// stallFirst is how long a run's watch may be silent, with jobs out,
// before it starts again.
const stallFirst = 5 * time.Second

// takeLost takes an outcome for each job of the run that is gone from the
// queue without one (deleted, or lost with a damaged store), so that the
// run does not wait for it for ever. A job counts as gone when it was
// missing at the look before too (suspects), since a server of a cluster
// may answer before it has every write.
func (c *collector) takeLost(ctx context.Context) {
	var ids []string
	for _, seq := range c.order {
		if !c.seen[seq] {
			ids = append(ids, c.run+"."+strconv.Itoa(seq))
		}
	}
	missing, err := c.client.Lost(ctx, ids)
	if err != nil {
		return
	}
	var lost []string
	for _, id := range missing {
		if c.suspects[id] {
			lost = append(lost, id)
		}
	}
	clear(c.suspects)
	for _, id := range missing {
		c.suspects[id] = true
	}
	if len(lost) == 0 {
		return
	}
	c.r.Warn("run %s: %d jobs are gone from the queue without an outcome (deleted, or lost with damaged data): %s", c.run, len(lost), strings.Join(lost[:min(len(lost), 10)], " "))
	for _, id := range lost {
		// The job's number, for an attached run, which knows no more of it.
		seq, _ := strconv.Atoi(strings.TrimPrefix(id, c.run+"."))
		payload, _ := json.Marshal(Job{Run: c.run, Seq: seq})
		c.take(&queue.Info{ID: id, Payload: payload, State: queue.Dead, Errors: []string{"gone from the queue without an outcome"}, UpdatedAt: time.Now()})
	}
}

// fullGiveUp is how long herd run --queue waits for a full queue to have
// room, with no job finishing, before it leaves the run to the workers.
const fullGiveUp = 30 * time.Second

// noWorkerHint is how long herd run --queue waits for a first outcome
// before it looks for workers.
const noWorkerHint = 5 * time.Second

// hintWorkers warns if no worker is taking jobs from the run's queue.
func (rm *remote) hintWorkers() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := rm.client.Stats(ctx)
	if err != nil {
		return
	}
	name := rm.QueueName
	for _, q := range st.Queues {
		if q.Queue == name && (q.InFlight > 0 || q.IdleFetches > 0) {
			return // busy or waiting: workers are there
		}
	}
	rm.r.Warn("run %s: no worker is taking jobs from queue %q yet; start one with: herd work --queue %s --queue-name %s",
		rm.run, name, rm.URL, name)
}

// outcome turns a finished job's record into what a local run would have
// made of it. j is the job as enqueued; attached, it is read from the
// record.
func (rm *remote) outcome(info *queue.Info, j run.Job) *run.Outcome {
	var cj Job
	if j.Line == "" && json.Unmarshal(info.Payload, &cj) == nil {
		j = run.Job{Seq: cj.Seq, Args: cj.Args, Line: cj.Line, Stdin: cj.Stdin}
	}
	o := &run.Outcome{Job: j, Line: run.Shown(j.Line, 0)} // never ran: no slot
	var res Result
	if info.State == queue.Cancelled {
		o.Result.Exit, o.Result.Err, o.Result.Start = -1, errors.New("cancelled (herd queue cancel)"), info.UpdatedAt
		return o
	}
	if info.State == queue.Skipped {
		// Not run: a job it waited for failed (--after, --after-each).
		o.Result.Exit, o.Result.Err, o.Result.Start = -1, errors.New(lastError(info)), info.UpdatedAt
		return o
	}
	if json.Unmarshal(info.Result, &res) != nil {
		last := cmp.Or(lastError(info), "no result")
		o.Result.Exit, o.Result.Err, o.Result.Start = -1, fmt.Errorf("the queue gave up on it: %s", last), info.UpdatedAt
		return o
	}
	if res.Skipped {
		o.Skipped = true
		return o
	}
	o.Line, o.Slot, o.Host, o.Result = res.Line, res.Slot, res.Host, res.result()
	o.Stdout.Write(res.Stdout)
	o.Stderr.Write(res.Stderr)
	o.Received = int64(len(res.Stdout))
	return o
}

// attach collects the outcomes of an earlier run.
func (rm *remote) attach(ctx context.Context) error {
	r := rm.r
	st, err := ReadState(ctx, rm.client, rm.run)
	if errors.Is(err, queue.ErrNotFound) {
		return fmt.Errorf("--attach %s: the queue has no such run (runs are kept for a week)", rm.run)
	}
	if err != nil {
		return fmt.Errorf("--attach %s: %w", rm.run, err)
	}
	known := expand(st.Enqueued) // empty for a run of an earlier herd
	if len(st.Sending) > 0 {
		// The submitter stopped while it enqueued a batch (killed, or the
		// queue failed it): its jobs may be on the queue, each or none.
		sent, err := rm.existing(ctx, st.Sending)
		if err != nil {
			return fmt.Errorf("--attach %s: %w", rm.run, err)
		}
		rm.sending, rm.sent, rm.lookedAt = st.Sending, map[int]bool{}, time.Now()
		for _, seq := range sent {
			rm.sent[seq] = true
		}
		st.Jobs += len(sent)
		if len(known) > 0 {
			known = append(known, sent...)
		}
	}
	if st.Enqueueing {
		r.Warn("run %s: its submitter stopped before it had enqueued every job; showing the %d it enqueued", rm.run, st.Jobs)
	}
	r.SetTotal(st.Jobs)
	w := &runWatch{c: rm.client, pattern: rm.run + ".*"}
	if err := w.start(ctx); err != nil {
		return err
	}
	rm.collect(ctx, w, st.Jobs, known)
	if err := w.stop(); err != nil {
		r.Warn("%v", err)
	}
	return nil
}

// existing returns those of the run's jobs with these numbers that are on
// the queue.
func (rm *remote) existing(ctx context.Context, seqs []int) ([]int, error) {
	ids := make([]string, len(seqs))
	for i, seq := range seqs {
		ids[i] = rm.run + "." + strconv.Itoa(seq)
	}
	lost, err := rm.client.Lost(ctx, ids)
	if err != nil {
		return nil, err
	}
	var on []int
	for i, seq := range seqs {
		if !slices.Contains(lost, ids[i]) {
			on = append(on, seq)
		}
	}
	return on, nil
}
