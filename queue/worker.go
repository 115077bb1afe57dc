package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goherd/herd"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Job is a job as its handler sees it.
type Job struct {
	ID          string
	Kind        string
	Queue       string
	Key         string // its Options.Key
	Payload     []byte
	Attempt     int // 1 for the first attempt
	MaxAttempts int
	Parents     []string // the jobs it waited for, all succeeded: [Client.Infos] reads their results
}

// Decode decodes a job's JSON payload, as [Enqueue] encoded it.
func Decode[T any](j *Job) (T, error) {
	var v T
	if err := json.Unmarshal(j.Payload, &v); err != nil {
		return v, fmt.Errorf("queue: job %s: payload: %w", j.ID, err)
	}
	return v, nil
}

// Handler runs a job. The result it returns, if any, is kept with the job,
// also with an error (the output of a command that failed, say); an error
// makes the job try again later, unless it is [Permanent] or the job has
// had all its attempts.
type Handler func(ctx context.Context, job *Job) (result []byte, err error)

// PermanentError is an error that ends a job at once, without retries:
// what [Permanent] returns. Test for it with errors.As.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as final: the job fails at once, without retries.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{err}
}

// WorkerConfig sets up a [Worker]. The zero value serves the default queue
// with GOMAXPROCS jobs at once.
type WorkerConfig struct {
	// Queues are the named queues to serve. Empty means "default".
	Queues []string

	// Concurrency is how many jobs run at once. Zero means GOMAXPROCS.
	Concurrency int

	// Lease is how long a job may go without a sign of life before the
	// queue gives it to another worker. A running job's lease is renewed
	// while its handler runs, so only a worker that died loses its jobs.
	// Zero means 30s. It is a setting of the queue, shared by its workers:
	// give them all the same.
	Lease time.Duration

	// Backoff is the wait before the first retry; each retry waits twice
	// as long as the one before, up to MaxBackoff, drawn at random from
	// the upper half of that. Zero means 1s and 10m.
	Backoff, MaxBackoff time.Duration

	// ShutdownTimeout is how long a stopping worker lets running jobs
	// finish before it cancels them and hands them back. Zero means 30s.
	ShutdownTimeout time.Duration
}

// Worker runs jobs of the kinds it has handlers for.
type Worker struct {
	c        *Client
	cfg      WorkerConfig
	mu       sync.Mutex
	handlers map[string]Handler
	stopJobs context.CancelFunc // of the running Run: cancels its jobs
	aborted  bool
	cancels  cancels // the jobs in hand, for Client.Cancel and the heartbeat
	done     atomic.Uint64
	adm      *admitter // of the running Run: starts the jobs of limited queues
	id       string    // of the running Run: its id among the workers, recorded with each attempt
}

// NewWorker returns a worker taking jobs from this client's queue.
func (c *Client) NewWorker(cfg WorkerConfig) (*Worker, error) {
	if cfg.Concurrency < 0 || cfg.Lease < 0 || cfg.Backoff < 0 || cfg.MaxBackoff < 0 || cfg.ShutdownTimeout < 0 {
		return nil, fmt.Errorf("queue: new worker: %+v: no setting may be negative", cfg)
	}
	if len(cfg.Queues) == 0 {
		cfg.Queues = []string{"default"}
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = runtime.GOMAXPROCS(0)
	}
	if cfg.Lease == 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 10 * time.Minute
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	return &Worker{c: c, cfg: cfg, handlers: make(map[string]Handler)}, nil
}

// Handle registers the handler of a kind of job.
func (w *Worker) Handle(kind string, h Handler) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.handlers[kind] = h
}

func (w *Worker) handler(kind string) Handler {
	if kind == Barrier {
		return func(context.Context, *Job) ([]byte, error) { return nil, nil }
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.handlers[kind]
}

// consumerConfig is the durable consumer through which workers take the
// jobs of one queue at one priority.
func consumerConfig(queue string, p Priority, lease time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       "herd_" + queue + "_" + p.String(),
		FilterSubject: jobRoot + "." + queue + "." + p.String() + ".>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       lease,
		MaxDeliver:    -1,
		MaxAckPending: 100_000,
	}
}

// ensureConsumer makes the consumer of a queue at a priority when the
// first job of it is enqueued, so that the queue's figures are the
// consumer's from then on, with no worker yet. Workers set its lease.
func (c *Client) ensureConsumer(ctx context.Context, queue string, p Priority) error {
	key := queue + "." + p.String()
	if _, ok := c.consumers.Load(key); ok {
		return nil
	}
	_, err := c.js.CreateConsumer(ctx, streamName, consumerConfig(queue, p, 30*time.Second))
	if err != nil && !errors.Is(err, jetstream.ErrConsumerExists) {
		return fmt.Errorf("consumer %s: %w", key, err)
	}
	c.consumers.Store(key, true)
	return nil
}

// Run takes jobs and runs them until ctx is done. It also enqueues the
// jobs of the schedules of its queues (see [Client.AddSchedule]) as their
// ticks come. It then takes no more,
// lets the running jobs finish for up to [WorkerConfig.ShutdownTimeout],
// cancels those still running and hands them back to the queue, and
// returns nil once their outcomes are stored. A job of a worker that dies
// without handing it back is given to another worker when its lease runs
// out.
func (w *Worker) Run(ctx context.Context) error {
	consumers, names, err := w.consumers(ctx)
	if err != nil || ctx.Err() != nil {
		return err
	}
	p, err := newPuller(w.c.nc)
	if err != nil {
		return fmt.Errorf("queue: worker: %w", err)
	}
	defer p.close()
	notices, err := w.c.nc.Subscribe(cancelRoot+".>", func(m *nats.Msg) {
		w.cancels.notice(strings.TrimPrefix(m.Subject, cancelRoot+"."))
	})
	if err != nil {
		return fmt.Errorf("queue: worker: %w", err)
	}
	defer notices.Unsubscribe()

	pool, err := herd.New(herd.Config{Workers: w.cfg.Concurrency, QueueSize: 2 * w.cfg.Concurrency})
	if err != nil {
		return err
	}
	jobsCtx, stopJobs := w.jobContext(ctx)
	defer stopJobs()
	var scheduler sync.WaitGroup
	defer scheduler.Wait()
	schedCtx, stopSchedules := context.WithCancel(ctx)
	defer stopSchedules()
	scheduler.Go(func() { w.schedule(schedCtx) })

	// The heartbeat goes on while running jobs finish, and stops last.
	presence := newPresence(w.cfg)
	w.id = presence.info.ID
	beatCtx, stopBeat := context.WithCancel(context.WithoutCancel(ctx))
	var beats sync.WaitGroup
	defer beats.Wait()
	defer stopBeat()
	var running atomic.Int64
	free := make(chan struct{}, 1) // a slot came free
	outcomes := &outcomes{w: w, stop: jobsCtx.Done(), settled: free}
	freed := func() {
		running.Add(-1)
		select {
		case free <- struct{}{}:
		default:
		}
	}
	var taken ahead
	start := func(d delivery) {
		alive := w.keepAlive(jobsCtx, d)
		taken.add(d.info.Queue, 1)
		err := pool.Go(jobsCtx, func(context.Context) error {
			taken.add(d.info.Queue, -1)
			defer freed()
			defer alive()
			w.handle(jobsCtx, ctx, d, outcomes)
			return nil
		})
		if err != nil { // the jobs are being stopped: hand it back
			taken.add(d.info.Queue, -1)
			alive()
			d.grant.release(context.WithoutCancel(jobsCtx))
			d.msg.Nak()
			freed()
		}
	}

	// The queues' limits: followed while the worker takes jobs; the jobs
	// held for them are handed back when it stops.
	lim := newLimiter(w.c, presence.info.ID, w.cfg.Lease)
	adm := newAdmitter(lim, w.cfg.Lease, w.cfg.Concurrency, start, func() { running.Add(1) }, freed)
	w.adm = adm
	beats.Go(func() { w.beat(beatCtx, presence, w.done.Load, adm.inHand, &taken) })
	var limits sync.WaitGroup
	limits.Go(func() { lim.watch(ctx) })
	limits.Go(func() { adm.run(ctx) })
	select {
	case <-lim.ready:
	case <-ctx.Done():
	}
	var tidied time.Time
	var stale staleness

	for ctx.Err() == nil {
		if time.Since(tidied) > tidyEvery {
			w.tidy(ctx, consumers)
			tidied = time.Now()
		}
		if stored := outcomes.blocked(); stored != nil {
			// Outcomes cannot be stored: no new jobs until they can.
			select {
			case <-stored:
			case <-time.After(tidyEvery):
			case <-ctx.Done():
			}
			continue
		}
		if presence.draining.Load() { // asked to take no new jobs (Client.Drain)
			p.handBack() // those that came late for a pull
			select {
			case <-presence.changed:
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		// Take up to twice the concurrency: jobs waiting in the pool's
		// queue start the moment a slot frees, without a round trip. And
		// no more while maxUnsettled jobs wait for their outcomes to be
		// stored: those would all run again if the worker died.
		n := min(2*w.cfg.Concurrency-int(running.Load()), maxUnsettled-int(outcomes.unsettled.Load()))
		if n <= 0 {
			select {
			case <-free:
			case <-ctx.Done():
			}
			continue
		}
		msgs := w.fetch(ctx, p, names, n, adm)
		if presence.draining.Load() { // asked meanwhile: hand them back
			for _, m := range msgs {
				m.Nak()
			}
			continue
		}
		stale.refresh(ctx, w.c)
		var limited keyGroups
		for _, d := range w.prepare(ctx, msgs, stale.upTo) {
			running.Add(1)
			if _, ok := lim.limited(d.info.Queue); ok {
				limited.add(d)
			} else {
				start(d)
			}
		}
		// Each key's jobs are offered in turn, the keys at once: a start
		// under a limit writes its slots to the server, and the round
		// trips of one key would otherwise hold up the others'.
		var offers sync.WaitGroup
		for _, ds := range limited.groups {
			offers.Go(func() {
				for _, d := range ds {
					adm.offer(ctx, d)
				}
			})
		}
		offers.Wait()
	}
	limits.Wait() // no job starts after this

	// Stopping: let the running jobs finish, up to the timeout.
	timer := time.AfterFunc(w.cfg.ShutdownTimeout, stopJobs)
	defer timer.Stop()
	pool.Close()
	if outcomes.blocked() != nil {
		stopJobs() // hand back the jobs whose outcomes are kept, to run again later
	}
	outcomes.pending.Wait()
	outcomes.passing.Wait()
	w.tidy(context.WithoutCancel(ctx), consumers)
	return nil
}

// keyGroups groups deliveries by queue and key, in the order they came.
type keyGroups struct {
	groups [][]delivery
	index  map[[2]string]int
}

func (k *keyGroups) add(d delivery) {
	id := [2]string{d.info.Queue, d.info.Key}
	i, ok := k.index[id]
	if !ok {
		if k.index == nil {
			k.index = map[[2]string]int{}
		}
		i = len(k.groups)
		k.index[id] = i
		k.groups = append(k.groups, nil)
	}
	k.groups[i] = append(k.groups[i], d)
}

// consumers returns the consumers of the worker's queues, high priority
// first, and their names, waiting for a server that does not answer yet;
// none if ctx ends first.
func (w *Worker) consumers(ctx context.Context) ([]jetstream.Consumer, []string, error) {
	var consumers []jetstream.Consumer
	var names []string
	for _, prio := range []Priority{High, Default, Low} {
		for _, q := range w.cfg.Queues {
			cons, err := w.c.workerConsumer(ctx, q, prio, w.cfg.Lease)
			for wait := 250 * time.Millisecond; err != nil && transient(err) && ctx.Err() == nil; wait = min(2*wait, 5*time.Second) {
				// A cluster electing its leaders, or a server too busy to
				// answer in time: a worker waits rather than gives up.
				w.c.log.Warn("queue: worker: the server does not answer; trying again", "queue", q, "error", err)
				select {
				case <-time.After(wait):
				case <-ctx.Done():
				}
				cons, err = w.c.workerConsumer(ctx, q, prio, w.cfg.Lease)
			}
			if ctx.Err() != nil {
				return nil, nil, nil
			}
			if err != nil {
				return nil, nil, fmt.Errorf("queue: worker: queue %s: %w", q, err)
			}
			consumers, names = append(consumers, cons), append(names, cons.CachedInfo().Name)
		}
	}
	return consumers, names, nil
}

// jobContext returns the context jobs run under, which outlives ctx by the
// shutdown timeout, and its cancel, which Abort calls too.
func (w *Worker) jobContext(ctx context.Context) (context.Context, context.CancelFunc) {
	jobsCtx, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopJobs = stopJobs
	if w.aborted {
		stopJobs()
	}
	return jobsCtx, stopJobs
}

// maxUnsettled is the most jobs a worker runs ahead of the storing of
// their outcomes. Outcomes are stored in groups while the worker goes on,
// and larger groups store faster; but a job whose outcome is not stored
// when its worker dies runs again.
const maxUnsettled = 256

// tidyEvery is how often a worker removes the messages of finished jobs.
const tidyEvery = 5 * time.Second

// tidy removes from the stream the messages of the jobs that every worker
// is done with: those below each consumer's acknowledgement floor. Their
// records stay. An acknowledgement costs no write to disk this way (the
// consumer's state is saved about ten times a second), and the space is
// taken back a batch at a time.
func (w *Worker) tidy(ctx context.Context, consumers []jetstream.Consumer) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, cons := range consumers {
		ci, err := cons.Info(ctx)
		if err != nil || ci.AckFloor.Stream == 0 {
			continue
		}
		err = w.c.stream.Purge(ctx, jetstream.WithPurgeSubject(ci.Config.FilterSubject), jetstream.WithPurgeSequence(ci.AckFloor.Stream+1))
		if err != nil {
			w.c.log.Debug("queue: removing finished jobs", "consumer", ci.Name, "error", err)
		}
	}
}

// Abort cancels the jobs running now, as the end of the shutdown timeout
// does: a worker whose Run's context is done hands them back at once
// instead of letting them finish. Jobs that finish anyway count as done.
func (w *Worker) Abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.aborted = true
	if w.stopJobs != nil {
		w.stopJobs()
	}
}

// A puller takes jobs from the queue's consumers with pull requests, whose
// answers all come through one subscription.
type puller struct {
	nc    *nats.Conn
	sub   *nats.Subscription
	inbox string
	gen   uint64               // of the pull under way, in its reply subject
	empty map[string]time.Time // consumers that had no job, until when to skip them
}

// emptyFor is how long a worker skips a consumer that had no job.
const emptyFor = 5 * time.Millisecond

func newPuller(nc *nats.Conn) (*puller, error) {
	p := &puller{nc: nc, inbox: nc.NewInbox(), empty: map[string]time.Time{}}
	var err error
	if p.sub, err = nc.SubscribeSync(p.inbox + ".*"); err != nil {
		return nil, err
	}
	p.sub.SetPendingLimits(-1, -1)
	return p, nil
}

// close hands back the jobs not taken, and stops.
func (p *puller) close() {
	p.handBack()
	p.sub.Unsubscribe()
}

// handBack hands back the jobs that came for a pull but were not taken (a
// pull given up on whose jobs came late), so that they need not wait for
// their lease to run out.
func (p *puller) handBack() {
	for {
		m, err := p.sub.NextMsg(0)
		if err != nil {
			return
		}
		if strings.HasPrefix(m.Reply, "$JS.ACK.") {
			m.Nak()
		}
	}
}

// pull takes up to n jobs from a consumer: those there now, or, with a
// wait, those that come within it. Jobs that arrive late, for an earlier
// pull, are taken too: they are this worker's.
func (p *puller) pull(consumer string, n int, wait time.Duration) ([]*nats.Msg, error) {
	p.gen++
	reply := p.inbox + "." + strconv.FormatUint(p.gen, 10)
	req := fmt.Appendf(nil, `{"batch":%d,"no_wait":true}`, n)
	if wait > 0 {
		req = fmt.Appendf(nil, `{"batch":%d,"expires":%d}`, n, wait.Nanoseconds())
	}
	if err := p.nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+streamName+"."+consumer, reply, req); err != nil {
		return nil, err
	}
	end := time.Now().Add(wait + 2*time.Second)
	var msgs []*nats.Msg
	for len(msgs) < n {
		m, err := p.sub.NextMsg(time.Until(end))
		if err != nil {
			if len(msgs) > 0 {
				return msgs, nil
			}
			return nil, err // the server does not answer
		}
		if status := m.Header.Get("Status"); status == "" && strings.HasPrefix(m.Reply, "$JS.ACK.") {
			msgs = append(msgs, m)
			continue
		} else if m.Subject != reply || status == "100" {
			continue // the end of an earlier pull, or a heartbeat
		} else if status != "404" && status != "408" {
			// 409: the consumer changed leader or was deleted, or the
			// server had too many pulls waiting.
			return msgs, fmt.Errorf("pull %s: %s %s", consumer, status, m.Header.Get("Description"))
		}
		return msgs, nil // no (more) jobs
	}
	return msgs, nil
}

// fetch takes up to n jobs, high priority first. When there are none it
// waits a moment for one. Of a limited queue it takes only as many as
// there seem to be slots for, and none while it holds one of its jobs
// (see admitter).
//
// A consumer that had no job is asked again only after a few milliseconds
// (but first when the worker is idle): most queues use one priority, and
// asking the empty ones each time would cost as much as the jobs. So a
// high-priority job may start a few milliseconds after the jobs of lower
// priority taken meanwhile.
func (w *Worker) fetch(ctx context.Context, p *puller, consumers []string, n int, adm *admitter) []*nats.Msg {
	var msgs []*nats.Msg
	queues := w.cfg.Queues
	for i, cons := range consumers {
		if time.Now().Before(p.empty[cons]) || adm.blocked(queues[i%len(queues)]) {
			continue
		}
		batch, err := p.pull(cons, adm.batch(queues[i%len(queues)], n-len(msgs)), 0)
		if len(batch) == 0 {
			p.empty[cons] = time.Now().Add(emptyFor)
		}
		msgs = append(msgs, batch...)
		if err != nil {
			w.c.log.Debug("queue: fetch", "consumer", cons, "error", err)
		}
		if len(msgs) == n {
			return msgs
		}
	}
	if len(msgs) > 0 || ctx.Err() != nil {
		return msgs
	}
	clear(p.empty)
	// Nothing waiting: wait on the default priority of the first queue
	// not held back by its limits, which is where most jobs arrive; the
	// others are looked at again after the wait. The wait is for one job:
	// a pull for more would end only when it has them all, or at its
	// expiry, and the first would wait until then. The next fetch takes
	// the jobs that came with it.
	i := slices.IndexFunc(queues, func(q string) bool { return !adm.blocked(q) })
	if i < 0 {
		select { // every queue is held back: until one is not
		case <-adm.unblocked:
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
		}
		return nil
	}
	batch, err := p.pull(consumers[len(queues)+i], 1, 200*time.Millisecond)
	if err != nil && len(batch) == 0 {
		// The server is away: don't spin while the client reconnects.
		w.c.log.Debug("queue: fetch", "error", err)
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	return batch
}

// maxRecordedResult is the largest result kept in a job's record; bigger
// ones are kept apart in an object store. A record must fit in one NATS
// message (1MiB by default), with the payload and the error history.
const maxRecordedResult = 64 << 10

// runningAfter is how long a job runs before its record says so.
const runningAfter = 50 * time.Millisecond

// A delivery is a job taken from the queue, with its record as it is now.
type delivery struct {
	msg   *nats.Msg
	info  *Info
	grant *grant // the slots it holds under its queue's limits, if any
}

// staleness says which deliveries may be stale: a job whose outcome was
// stored and acknowledged can be delivered again if the server lost the
// acknowledgement, which it saves about ten times a second. That takes a
// restart of the server or, on a cluster, a new leader, and only jobs
// stored before then can be affected. The embedded server started when
// the client opened; a server elsewhere may restart (the client then
// reconnects) or change leaders (unseen by the client, so the worker looks
// again from time to time).
type staleness struct {
	upTo       uint64    // jobs stored up to this stream sequence may be stale
	at         time.Time // when upTo was read; zero if never
	reconnects uint64    // the client's reconnections when upTo was read
}

// staleEvery is how often a worker of a server elsewhere reads upTo again.
const staleEvery = 10 * time.Second

// refresh reads upTo when the worker starts, after each reconnect, and
// from time to time with a server elsewhere. If the stream cannot be read,
// every delivery counts as stale.
//
// It is called after the jobs are taken, before they are looked at: the
// client counts a reconnection before it receives anything from the new
// server, so jobs that came through a new connection are never judged by
// the upTo of the connection before.
func (s *staleness) refresh(ctx context.Context, c *Client) {
	if c.srv != nil {
		s.upTo = c.openedAt
		return
	}
	reconnects := c.nc.Stats().Reconnects
	if !s.at.IsZero() && reconnects == s.reconnects && time.Since(s.at) < staleEvery {
		return
	}
	s.reconnects, s.at = reconnects, time.Now()
	var err error
	if s.upTo, err = c.lastSeq(ctx); err != nil {
		s.upTo = math.MaxUint64
	}
}

// prepare returns the jobs just taken that are to run. The message carries
// a job's record as it was enqueued; a record written since (a job
// delivered again after a failed attempt, a lost worker, or a restarted
// server) says how it went: a finished job is acknowledged and not run
// again, and a job that ran before goes on with its attempts and errors so
// far. The records of the deliveries that may be stale (see staleness) are
// read in one request. A job whose time has not come is handed back until
// then.
func (w *Worker) prepare(ctx context.Context, msgs []*nats.Msg, staleUpTo uint64) []delivery {
	ds := make([]delivery, 0, len(msgs))
	var stale []int // indexes in ds
	var infos []*Info
	var seqs []uint64
	for _, msg := range msgs {
		info := new(Info)
		if err := json.Unmarshal(msg.Data, info); err != nil || info.ID == "" {
			w.c.log.Error("queue: dropping a message that is not a job", "subject", msg.Subject, "error", err)
			msg.Term()
			continue
		}
		meta, err := msg.Metadata()
		if err != nil || meta.NumDelivered > 1 || meta.Sequence.Stream <= staleUpTo || !info.RunAt.IsZero() {
			var seq uint64
			if err == nil {
				seq = meta.Sequence.Stream
			}
			stale, infos, seqs = append(stale, len(ds)), append(infos, info), append(seqs, seq)
		}
		ds = append(ds, delivery{msg: msg, info: info})
	}
	if len(stale) > 0 {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		cur, err := w.c.current(rctx, infos, seqs)
		if err != nil {
			w.c.log.Warn("queue: job records unreadable; trying later", "error", err)
			for _, d := range ds {
				d.msg.NakWithDelay(time.Second)
			}
			return nil
		}
		for i, j := range stale {
			ds[j].info = cur[i]
		}
	}
	run := ds[:0]
	var finished []delivery
	for _, d := range ds {
		if d.info.State.Finished() {
			finished = append(finished, d)
			continue
		}
		if wait := time.Until(d.info.RunAt); wait > 0 {
			d.msg.NakWithDelay(wait)
			continue
		}
		run = append(run, d)
	}
	w.settleFinished(ctx, finished)
	return run
}

// settleFinished settles jobs delivered again after they finished: there is
// nothing to do but pass their outcomes on to the jobs that wait for
// them, if the worker that stored them did not live to.
func (w *Worker) settleFinished(ctx context.Context, ds []delivery) {
	if len(ds) == 0 {
		return
	}
	var parents []*Info
	for _, d := range ds {
		if d.info.waited() {
			parents = append(parents, d.info)
		}
	}
	if err := w.c.settle(ctx, parents...); err != nil {
		w.c.log.Warn("queue: passing jobs' outcomes on to the jobs that wait for them; trying later", "jobs", len(parents), "error", err)
		for _, d := range ds {
			if d.info.waited() {
				d.msg.NakWithDelay(time.Second)
			} else {
				d.msg.Ack()
			}
		}
		return
	}
	for _, d := range ds {
		d.msg.Ack()
	}
}

// handle runs one delivered job and records how it went. The outcome is
// handed to the client's committer, which stores it with others in one
// write and then settles the message: a job leaves the queue only once its
// outcome is kept, and the slot is free for the next job meanwhile.
func (w *Worker) handle(jobsCtx, runCtx context.Context, d delivery, outcomes *outcomes) {
	msg, info := d.msg, d.info
	ctx := context.WithoutCancel(jobsCtx)
	defer d.grant.release(ctx) // at the latest; once the handler returns, at best
	if runCtx.Err() != nil {
		msg.Nak() // taken but not started before the worker began to stop: hand it back
		return
	}
	jobCtx, done := w.cancels.take(jobsCtx, info)
	defer done()
	if context.Cause(jobCtx) == errCancelled { // cancelled while it waited for a slot
		info.State, info.UpdatedAt = Cancelled, time.Now()
		outcomes.add(ctx, msg, info, func() error { return msg.Ack() })
		return
	}
	info.State, info.Attempts, info.UpdatedAt = Running, info.Attempts+1, time.Now()
	info.Worker, info.StartedAt = w.id, info.UpdatedAt
	reconnected := w.c.reconnectSignal() // a cancel notice may be missed while away
	// A job that is done within runningAfter never shows as running: for
	// short jobs that record would cost a store write each, for a state
	// no one could see in time.
	// Nothing changes info while the handler runs, so the timer may read
	// it; and handle waits for the timer before changing it again, so that
	// the running record is handed to the committer before the outcome,
	// which then replaces it.
	recorded := make(chan struct{})
	t := time.AfterFunc(runningAfter, func() {
		defer close(recorded)
		if m, err := w.c.newRecordMsg(info); err == nil {
			w.c.commit.add(ctx, &write{msg: m, done: func(error) {}}) // only news: nobody waits for it
		}
	})
	started := time.Now()
	w.c.counts.started(info, started)
	result, err := w.run(jobCtx, d)
	ran := time.Since(started)
	w.adm.handOn(ctx, d.grant, info) // the next job of its queue may start
	w.done.Add(1)
	if !t.Stop() {
		<-recorded
	}
	info.UpdatedAt = time.Now()
	finish := func(settle func() error) {
		w.c.counts.finished(info, ran)
		outcomes.add(ctx, msg, info, settle)
	}
	select {
	case <-reconnected:
		// The connection was lost while the job ran: look whether it was
		// cancelled meanwhile, so that its outcome does not replace that.
		if now, _, err := w.c.info(ctx, info.ID); err == nil && now.State == Cancelled {
			info.State = Cancelled
			finish(func() error { return msg.Ack() })
			return
		}
	default:
	}
	switch {
	case context.Cause(jobCtx) == errCancelled:
		info.State = Cancelled
		finish(func() error { return msg.Ack() })
	case err != nil && jobsCtx.Err() != nil && runCtx.Err() != nil:
		// Cancelled because this worker is stopping: hand the job back
		// without counting the attempt.
		info.State, info.Attempts = Queued, info.Attempts-1
		finish(func() error { return msg.Nak() })
	case err == nil:
		info.State, info.Result = Succeeded, result
		finish(func() error { return msg.Ack() })
	default:
		info.Errors = append(info.Errors, fmt.Sprintf("attempt %d: %v", info.Attempts, err))
		info.Result = result // what the handler returned with its error, if anything
		if _, permanent := errors.AsType[*PermanentError](err); permanent || info.Attempts >= info.MaxAttempts {
			info.State = Dead
			w.c.log.Warn("queue: job is dead", "id", info.ID, "kind", info.Kind, "attempts", info.Attempts, "error", err)
			finish(func() error { return msg.Ack() })
			return
		}
		info.State = Retrying
		delay := w.backoff(info.Attempts)
		finish(func() error { return msg.NakWithDelay(delay) })
	}
}

// run calls the job's handler with the job's time limit, and turns a
// panic into an error that carries the stack. (keepAlive renews its lease
// and slots meanwhile.)
func (w *Worker) run(ctx context.Context, d delivery) (result []byte, err error) {
	info := d.info
	h := w.handler(info.Kind)
	if h == nil {
		return nil, fmt.Errorf("no handler for kind %q", info.Kind)
	}
	if info.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(info.Timeout))
		defer cancel()
	}
	defer func() {
		if v := recover(); v != nil {
			err = &herd.PanicError{Value: v, Stack: debug.Stack()} // as a pool reports it
		}
	}()
	job := &Job{ID: info.ID, Kind: info.Kind, Queue: info.Queue, Key: info.Key, Payload: info.Payload, Attempt: info.Attempts, MaxAttempts: info.MaxAttempts, Parents: info.Parents}
	return h(ctx, job)
}

// keepAlive renews the lease of a job the worker has taken, and its
// slots under its queue's limits, every third of a lease, from now until
// the function it returns is called, once: while the job waits for a free
// worker, as the jobs taken ahead do, and while it runs. A job that waited
// unrenewed longer than a lease would be taken by another worker too.
func (w *Worker) keepAlive(ctx context.Context, d delivery) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(w.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				d.msg.InProgress()
				d.grant.renew(ctx)
			case <-done:
				return
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// backoff is the wait before the retry that follows attempt n.
func (w *Worker) backoff(n int) time.Duration {
	return herd.Backoff(n, w.cfg.Backoff, w.cfg.MaxBackoff)
}
