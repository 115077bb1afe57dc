package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Limits across the fleet. A queue's limits live in a bucket of their own
// (limitsBucket), by queue name, so they survive restarts and every worker
// sees a change the moment it is stored. Only the jobs of a limited queue
// pay for them: a worker starts such a job once it holds what the job
// needs, taken from a second bucket (slotsBucket) by writes that expect the
// revision they read, so that two workers never take the same thing:
//
//	q.<queue>.<n>          one of the queue's Concurrency slots
//	k.<queue>.<key>.<n>    one of the KeyConcurrency slots of a key (hashed)
//	r.<queue>              the queue's rate: when its next start is due
//
// A slot's value says until when it is held: the worker renews it with the
// job's lease and deletes it when the job ends (a retry gives it back while
// it waits for its backoff). A worker killed while holding slots holds them
// only until its lease runs out: then another takes them over. Every worker
// watches the bucket, so a slot given back is taken within moments.
//
// The rate is a generic cell rate algorithm (GCRA): r.<queue> holds the
// theoretical time of the next start; a start is allowed if that time is
// at most Burst intervals ahead of now, and moves it one interval on.

const (
	limitsBucket = "HERD_LIMITS"
	slotsBucket  = "HERD_SLOTS"
	// slotsKept is how long the slots bucket keeps a key not written:
	// longer than any lease, so only what was given back goes.
	slotsKept = 24 * time.Hour
)

// Limits bound how many jobs of one queue run across every worker of the
// queue, however many there are; see [Client.SetLimits]. The zero value
// limits nothing.
type Limits struct {
	// Concurrency is how many jobs of the queue may run at once.
	Concurrency int `json:"concurrency,omitempty"`
	// Rate is how many jobs of the queue may start a second, on average.
	Rate float64 `json:"rate,omitempty"`
	// Burst is how many may start at once after a quiet spell, above the
	// Rate; zero means 1.
	Burst int `json:"burst,omitempty"`
	// KeyConcurrency is how many jobs of one key ([Options.Key]) may run
	// at once. Jobs with no key are bound only by the queue's limits.
	KeyConcurrency int `json:"key_concurrency,omitempty"`
}

// IsZero reports whether l limits nothing.
func (l Limits) IsZero() bool { return l == Limits{} }

// String says what l limits, as herd queue limit prints it.
func (l Limits) String() string {
	var parts []string
	if l.Concurrency > 0 {
		parts = append(parts, fmt.Sprintf("at most %d at once", l.Concurrency))
	}
	if l.Rate > 0 {
		parts = append(parts, fmt.Sprintf("at most %s (burst %d)", FormatRate(l.Rate), max(l.Burst, 1)))
	}
	if l.KeyConcurrency > 0 {
		parts = append(parts, fmt.Sprintf("at most %d at once per key", l.KeyConcurrency))
	}
	if len(parts) == 0 {
		return "no limits"
	}
	return strings.Join(parts, ", ")
}

// maxSlots bounds Concurrency and KeyConcurrency (a worker reads every
// slot of a queue to find a free one), and Burst with them.
const maxSlots = 10_000

func (l Limits) validate() error {
	for _, f := range []struct {
		name string
		n    int
	}{{"concurrency", l.Concurrency}, {"key concurrency", l.KeyConcurrency}, {"burst", l.Burst}} {
		switch {
		case f.n < 0:
			return fmt.Errorf("%s %d: must not be negative", f.name, f.n)
		case f.n > maxSlots:
			return fmt.Errorf("%s %d: at most %d", f.name, f.n, maxSlots)
		}
	}
	switch {
	case l.Rate < 0 || math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0):
		return fmt.Errorf("rate %g: want a number of starts a second, not negative", l.Rate)
	case l.Rate > 0 && l.Rate < 1e-6:
		return fmt.Errorf("rate %g: below one start in 11 days", l.Rate)
	case l.Burst > 0 && l.Rate == 0:
		return fmt.Errorf("burst %d: a burst needs a rate", l.Burst)
	}
	return nil
}

// ParseRate parses a rate of starts as people write it: "50/s", "100/m",
// "2/h", or a bare number of starts a second; "0" is no limit.
func ParseRate(s string) (float64, error) {
	num, per, _ := strings.Cut(strings.TrimSpace(s), "/")
	r, err := strconv.ParseFloat(num, 64)
	if err != nil || !(r >= 0) || math.IsInf(r, 0) {
		return 0, fmt.Errorf("rate %q: want starts a second, a minute or an hour, as 50/s, 100/m or 2/h", s)
	}
	switch per {
	case "", "s":
	case "m":
		r /= 60
	case "h":
		r /= 3600
	default:
		return 0, fmt.Errorf("rate %q: want /s, /m or /h", s)
	}
	return r, nil
}

// FormatRate writes a rate of starts a second as [ParseRate] reads it: a
// second, a minute or an hour, whichever gives a number of at least 1.
func FormatRate(r float64) string {
	per := "s"
	switch {
	case r == 0:
		return "0"
	case r*60 < 1:
		r, per = r*3600, "h"
	case r < 1:
		r, per = r*60, "m"
	}
	return strconv.FormatFloat(math.Round(r*1000)/1000, 'f', -1, 64) + "/" + per
}

// SetLimits sets the limits of a named queue across every worker; zero
// Limits clear them. Workers running follow a change within moments, and
// jobs running go on: a lower limit holds back new starts until the jobs
// running are below it.
func (c *Client) SetLimits(ctx context.Context, queue string, l Limits) error {
	if !validQueue(queue) {
		return fmt.Errorf("queue: limit: queue %q: want letters, digits and - _ = /", queue)
	}
	if err := l.validate(); err != nil {
		return fmt.Errorf("queue: limit %s: %w", queue, err)
	}
	if l.IsZero() {
		err := c.limits.Delete(ctx, queue)
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("queue: limit %s: %w", queue, err)
		}
		return nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if _, err := c.limits.Put(ctx, queue, b); err != nil {
		return fmt.Errorf("queue: limit %s: %w", queue, err)
	}
	return nil
}

// Limits returns the limits of every limited queue, by queue name.
func (c *Client) Limits(ctx context.Context) (map[string]Limits, error) {
	all := map[string]Limits{}
	keys, err := c.limits.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: limits: %w", err)
	}
	for q := range keys.Keys() {
		e, err := c.limits.Get(ctx, q)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // cleared meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("queue: limits: %w", err)
		}
		var l Limits
		if err := json.Unmarshal(e.Value(), &l); err != nil {
			return nil, fmt.Errorf("queue: limits of %s: %w", q, err)
		}
		all[q] = l
	}
	return all, nil
}

// heldSlots returns how many slots of a queue's Concurrency are held now.
func (c *Client) heldSlots(ctx context.Context, queue string) (int, error) {
	keys, err := c.slots.ListKeysFiltered(ctx, "q."+queue+".*")
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	now := time.Now()
	for k := range keys.Keys() {
		e, err := c.slots.Get(ctx, k)
		if err != nil {
			continue // given back meanwhile
		}
		if until, ok := parseSlot(e.Value()); ok && until.After(now) {
			n++
		}
	}
	return n, nil
}

// slotValue is what a slot holds: until when it is held, and by whom.
func slotValue(until time.Time, worker string) []byte {
	return fmt.Appendf(nil, "%d %s", until.UnixNano(), worker)
}

// parseSlot reads a slot's value.
func parseSlot(b []byte) (until time.Time, ok bool) {
	s, _, _ := strings.Cut(string(b), " ")
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, n), true
}

// keyToken is a job's key as a token of a slot's name.
func keyToken(key string) string {
	h := fnv.New64a()
	h.Write([]byte(key))
	return strconv.FormatUint(h.Sum64(), 36)
}

// A limiter is a worker's side of the limits: what it has seen of the
// limits and of the slots, kept up to date by watching both buckets.
type limiter struct {
	c      *Client
	worker string        // the worker's id, written in the slots it takes
	lease  time.Duration // how long a slot is held without renewal

	mu     sync.Mutex
	limits map[string]Limits // by queue
	slots  map[string]seen   // by key in slotsBucket
	// changed is signalled when a limit or a slot changes.
	changed chan struct{}
	// ready is closed once the limits stored are all read.
	ready     chan struct{}
	readyOnce sync.Once
}

// seen is the last value of a key of slotsBucket: until when a slot is
// held (zero: free), or the rate's next start, and its revision.
type seen struct {
	until time.Time
	rev   uint64
}

func newLimiter(c *Client, worker string, lease time.Duration) *limiter {
	return &limiter{c: c, worker: worker, lease: lease, limits: map[string]Limits{}, slots: map[string]seen{}, changed: make(chan struct{}, 1), ready: make(chan struct{})}
}

// limited returns the limits of a queue and whether it has any.
func (l *limiter) limited(queue string) (Limits, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.limits[queue]
	return lim, ok
}

// watch keeps the limiter up to date until ctx is done. It closes ready
// once it has read the limits stored: a worker takes no job before, for
// it would not know whether the job's queue is limited.
func (l *limiter) watch(ctx context.Context) {
	for wait := time.Second; ctx.Err() == nil; wait = min(2*wait, time.Minute) {
		limits, err := l.c.limits.WatchAll(ctx)
		var slots jetstream.KeyWatcher
		if err == nil {
			if slots, err = l.c.slots.WatchAll(ctx); err != nil {
				limits.Stop()
			}
		}
		if err != nil {
			l.c.log.Warn("queue: limits unreadable; trying again", "error", err, "in", wait)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
			continue
		}
		l.follow(ctx, limits, slots)
		limits.Stop()
		slots.Stop()
	}
}

// follow applies the changes the watchers report until ctx is done or a
// watch ends.
func (l *limiter) follow(ctx context.Context, limits, slots jetstream.KeyWatcher) {
	for {
		select {
		case e, open := <-limits.Updates():
			if !open {
				return
			}
			if e == nil {
				l.readyOnce.Do(func() { close(l.ready) })
				continue
			}
			l.mu.Lock()
			delete(l.limits, e.Key())
			var lim Limits
			if e.Operation() == jetstream.KeyValuePut {
				if err := json.Unmarshal(e.Value(), &lim); err != nil {
					l.c.log.Warn("queue: bad limits", "queue", e.Key(), "error", err)
				} else if !lim.IsZero() {
					l.limits[e.Key()] = lim
				}
			}
			l.mu.Unlock()
		case e, open := <-slots.Updates():
			if !open {
				return
			}
			if e == nil {
				continue
			}
			l.mu.Lock()
			l.see(e.Key(), e)
			l.mu.Unlock()
		case <-ctx.Done():
			return
		}
		select {
		case l.changed <- struct{}{}:
		default:
		}
	}
}

// see notes a key's entry, unless what is noted is newer. l.mu is held.
func (l *limiter) see(key string, e jetstream.KeyValueEntry) {
	if e.Revision() < l.slots[key].rev {
		return
	}
	s := seen{rev: e.Revision()}
	if e.Operation() == jetstream.KeyValuePut {
		s.until, _ = parseSlot(e.Value())
	}
	l.slots[key] = s
}

// A grant is what a job holds to start: the slots it took.
type grant struct {
	l     *limiter
	mu    sync.Mutex
	slots map[string]uint64 // key → revision written
	// written is when the slot written longest ago was written: each is
	// held until a lease after.
	written time.Time
}

// admission is what admit found.
type admission struct {
	start   bool          // the job may start,
	grant   *grant        // holding this (nil: its queue has no limits)
	wait    time.Duration // otherwise: try again after this, or when a slot changes
	keyFull bool          // its key's slots are all held: let others of its queue go first
}

// admit takes what the job needs to start under its queue's limits: a slot
// of its key, a slot of its queue, and a start of its queue's rate, in that
// order (the rate last, since a start cannot be given back). If one is not
// there, what it took is given back and admission says how long to wait.
//
// slot, if not nil, holds the slots handed on by a job that finished (of
// its queue, and of its key if it had the same): the job takes them rather
// than new ones, and they stay with slot if the job cannot start.
func (l *limiter) admit(ctx context.Context, info *Info, slot *grant) admission {
	lim, ok := l.limited(info.Queue)
	if !ok {
		return admission{start: true} // no longer limited
	}
	g := &grant{l: l, slots: map[string]uint64{}}
	keyPrefix := "k." + info.Queue + "." + keyToken(info.Key)
	if lim.KeyConcurrency > 0 && info.Key != "" && !slot.has(keyPrefix+".") {
		if wait, ok := l.take(ctx, g, keyPrefix, lim.KeyConcurrency); !ok {
			return admission{wait: wait, keyFull: true}
		}
	}
	if lim.Concurrency > 0 && !slot.has("q."+info.Queue+".") {
		if wait, ok := l.take(ctx, g, "q."+info.Queue, lim.Concurrency); !ok {
			g.release(ctx)
			return admission{wait: wait}
		}
	}
	if lim.Rate > 0 {
		if wait, ok := l.start(ctx, info.Queue, lim); !ok {
			g.release(ctx)
			return admission{wait: wait}
		}
	}
	if lim.Concurrency > 0 {
		g.join(slot.split("q." + info.Queue + "."))
	}
	if lim.KeyConcurrency > 0 && info.Key != "" {
		g.join(slot.split(keyPrefix + "."))
	}
	return admission{start: true, grant: g}
}

// take takes one of the n slots under prefix for g. If all are held it
// returns false, and when the first of them runs out if its holder does not
// renew it.
func (l *limiter) take(ctx context.Context, g *grant, prefix string, n int) (time.Duration, bool) {
	now := time.Now()
	l.mu.Lock()
	held, soonest := l.occupied(prefix, now)
	// The free slots as seen now: a write expects each to be as seen, so
	// a slot taken meanwhile is not taken twice.
	type freeSlot struct {
		key string
		was seen
	}
	var free []freeSlot
	for i := range n {
		key := prefix + "." + strconv.Itoa(i)
		if s := l.slots[key]; !s.until.After(now) {
			free = append(free, freeSlot{key, s})
		}
	}
	l.mu.Unlock()
	if held >= n || len(free) == 0 {
		return time.Until(soonest), false
	}
	value := slotValue(now.Add(l.lease), l.worker)
	for _, f := range free {
		got, err := l.write(ctx, f.key, value, f.was)
		if err == nil {
			g.mu.Lock()
			g.slots[f.key] = got
			if g.written.IsZero() {
				g.written = now
			}
			g.mu.Unlock()
			l.noteWrite(f.key, got, now.Add(l.lease))
			return 0, true
		}
		l.refresh(ctx, f.key) // taken meanwhile: the next, if any
	}
	return time.Until(soonest), false
}

// write writes a key of slotsBucket if it is still as s saw it: free
// (given back, or never taken), or held at revision s.rev.
func (l *limiter) write(ctx context.Context, key string, value []byte, s seen) (uint64, error) {
	if s.until.IsZero() {
		return l.c.slots.Create(ctx, key, value)
	}
	return l.c.slots.Update(ctx, key, value, s.rev)
}

// refresh reads a key of slotsBucket whose write failed.
func (l *limiter) refresh(ctx context.Context, key string) {
	e, err := l.c.slots.Get(ctx, key)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		s := l.slots[key]
		l.slots[key] = seen{rev: s.rev} // free, at a revision only the watch knows
	case err == nil:
		l.see(key, e)
	}
}

// noteWrite notes a value this worker wrote, before the watch brings it.
func (l *limiter) noteWrite(key string, rev uint64, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if rev > l.slots[key].rev {
		l.slots[key] = seen{until: until, rev: rev}
	}
}

// start takes one start of a queue's rate, or returns how long until one
// is due.
func (l *limiter) start(ctx context.Context, queue string, lim Limits) (time.Duration, bool) {
	key := "r." + queue
	interval := time.Duration(float64(time.Second) / lim.Rate)
	ahead := time.Duration(max(lim.Burst, 1)) * interval
	for range 3 {
		now := time.Now()
		l.mu.Lock()
		s := l.slots[key]
		l.mu.Unlock()
		next := max(s.until.UnixNano(), now.UnixNano()) + int64(interval)
		if wait := time.Duration(next - now.UnixNano() - int64(ahead)); wait > 0 {
			return wait, false
		}
		got, err := l.write(ctx, key, strconv.AppendInt(nil, next, 10), s)
		if err == nil {
			l.noteWrite(key, got, time.Unix(0, next))
			return 0, true
		}
		l.refresh(ctx, key)
	}
	return interval, false // much contention: after an interval
}

// has reports whether the grant holds a slot under prefix.
func (g *grant) has(prefix string) bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for key := range g.slots {
		if strings.HasPrefix(key, prefix) {
			return true
		}
	}
	return false
}

// split moves the grant's slots under prefix to a grant of their own.
func (g *grant) split(prefix string) *grant {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	part := &grant{l: g.l, slots: map[string]uint64{}, written: g.written}
	for key, rev := range g.slots {
		if strings.HasPrefix(key, prefix) {
			part.slots[key] = rev
			delete(g.slots, key)
		}
	}
	return part
}

// join moves the slots of other, if any, to g.
func (g *grant) join(other *grant) {
	if other == nil {
		return
	}
	other.mu.Lock()
	defer other.mu.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	maps.Copy(g.slots, other.slots)
	clear(other.slots)
	if g.written.IsZero() || other.written.Before(g.written) {
		g.written = other.written
	}
}

// renew holds the grant's slots for another lease.
func (g *grant) renew(ctx context.Context) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	g.written = now
	until := now.Add(g.l.lease)
	for key, rev := range g.slots {
		got, err := g.l.c.slots.Update(ctx, key, slotValue(until, g.l.worker), rev)
		if err != nil {
			g.l.c.log.Warn("queue: a slot of a limit ran out while its job ran", "slot", key, "error", err)
			delete(g.slots, key)
			continue
		}
		g.slots[key] = got
		g.l.noteWrite(key, got, until)
	}
}

// release gives the grant's slots back.
func (g *grant) release(ctx context.Context) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, key := range slices.Sorted(maps.Keys(g.slots)) {
		if err := g.l.c.slots.Delete(ctx, key, jetstream.LastRevision(g.slots[key])); err != nil {
			// Taken over after it ran out: it is another's now.
			g.l.c.log.Debug("queue: giving back a slot", "slot", key, "error", err)
		}
		delete(g.slots, key)
	}
}

// An admitter holds the jobs a worker took that wait for their queue's
// limits, and starts each the moment it may. While it holds a job of a
// full queue, the worker takes no more of that queue (see Worker.fetch),
// so a full queue costs nothing but a watch, and holds back no other
// queue. A job whose key is full is held too, as many of a key as it has
// slots and up to keyHolds in all, without holding back its queue or
// counting against the worker's concurrency: the queue's other keys go on.
// More of a full key go back to the queue for a while.
//
// The worker counts the jobs it has in hand against its concurrency:
// those running, and those held for their queue. The admitter tells it,
// through count and uncount, when a job held for its key leaves that
// count, or comes back to it, and hands the job to start counted.
type admitter struct {
	lim      *limiter
	lease    time.Duration
	keyHolds int            // jobs of full keys held at most
	start    func(delivery) // runs an admitted job
	count    func()         // a job held for its key is to run or be held for its queue
	uncount  func()         // a job is handed back, or held for its key

	mu        sync.Mutex
	held      []*heldJob
	wake      chan struct{} // a job was held
	unblocked chan struct{} // a held job started or was handed back
}

// newAdmitter returns the admitter of a worker running concurrency jobs
// at once: it holds up to 4 times as many for their keys.
func newAdmitter(lim *limiter, lease time.Duration, concurrency int, start func(delivery), count, uncount func()) *admitter {
	return &admitter{lim: lim, lease: lease, keyHolds: 4 * max(1, concurrency), start: start, count: count, uncount: uncount,
		wake: make(chan struct{}, 1), unblocked: make(chan struct{}, 1)}
}

type heldJob struct {
	d       delivery
	since   time.Time // when it was first held
	touched time.Time // when its lease was last renewed
	claimed bool      // being offered again (under admitter.mu)
	forKey  bool      // held for a slot of its key: its queue is not held back, the worker does not count it
}

// keyWait is how long a job whose key is full waits before it is offered
// again (to any worker), after its n-th delivery: the queue's other keys
// go first meanwhile.
func keyWait(n uint64) time.Duration {
	return min(50*time.Millisecond<<min(n, 5), time.Second)
}

// blocked reports whether a job of queue is held for a slot of the queue
// (or a start of its rate).
func (a *admitter) blocked(queue string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.ContainsFunc(a.held, func(h *heldJob) bool { return h.d.info.Queue == queue && !h.forKey })
}

// inHand lists the jobs held, oldest first.
func (a *admitter) inHand() []RunningJob {
	a.mu.Lock()
	defer a.mu.Unlock()
	var jobs []RunningJob
	for _, h := range a.held {
		jobs = append(jobs, RunningJob{ID: h.d.info.ID, Kind: h.d.info.Kind, Queue: h.d.info.Queue, Since: h.since})
	}
	return jobs
}

// batch is how many jobs of a limited queue to take at once, of the n the
// worker could: as many as there seem to be slots for, and one more to
// hold, so that it starts the moment a slot comes free.
func (a *admitter) batch(queue string, n int) int {
	lim, ok := a.lim.limited(queue)
	switch {
	case !ok:
		return n
	case lim.Rate > 0:
		return 1
	case lim.Concurrency > 0:
		return max(1, min(n, lim.Concurrency-a.lim.held("q."+queue)+1))
	}
	return n
}

// offer starts d if its limits let it, and holds it otherwise; a job whose
// key is full, and that cannot be held for it, is handed back to be
// offered again a little later.
func (a *admitter) offer(ctx context.Context, d delivery) {
	now := time.Now()
	h := &heldJob{d: d, since: now, touched: now, claimed: true}
	a.mu.Lock()
	a.held = append(a.held, h)
	a.mu.Unlock()
	if _, held := a.try(ctx, h, nil); !held {
		return // started, or handed back
	}
	select { // held: run sets a timer for it
	case a.wake <- struct{}{}:
	default:
	}
}

// try offers a claimed held job again, with the queue slot of a job just
// finished if there is one, and starts it, hands it back, or leaves it
// held (unclaimed): then it says so, and how long it may wait.
func (a *admitter) try(ctx context.Context, h *heldJob, slot *grant) (wait time.Duration, held bool) {
	adm := a.lim.admit(ctx, h.d.info, slot)
	a.mu.Lock()
	if !adm.start && (!adm.keyFull || a.mayHoldForKey(h)) {
		was, now := h.forKey, adm.keyFull
		h.forKey, h.claimed = now, false
		a.mu.Unlock() // (h may be claimed again from here)
		switch {
		case now && !was:
			a.uncount()
			a.signalUnblocked() // its queue may be taken from again
		case !now && was:
			a.count()
		}
		return adm.wait, true
	}
	a.held = slices.DeleteFunc(a.held, func(o *heldJob) bool { return o == h })
	a.mu.Unlock()
	a.signalUnblocked()
	if adm.start {
		if h.forKey {
			a.count()
		}
		h.d.grant = adm.grant
		a.start(h.d)
		return 0, false
	}
	var n uint64 = 1
	if meta, err := h.d.msg.Metadata(); err == nil {
		n = meta.NumDelivered
	}
	h.d.msg.NakWithDelay(keyWait(n))
	if !h.forKey {
		a.uncount()
	}
	return 0, false
}

// mayHoldForKey reports whether h may be held for a slot of its key: if it
// already is, or if fewer jobs of its key are than it has slots, and fewer
// than keyHolds in all. a.mu is held.
func (a *admitter) mayHoldForKey(h *heldJob) bool {
	if h.forKey {
		return true
	}
	lim, _ := a.lim.limited(h.d.info.Queue)
	n, ofKey := 0, 0
	for _, o := range a.held {
		if o.forKey {
			n++
			if o.d.info.Queue == h.d.info.Queue && o.d.info.Key == h.d.info.Key {
				ofKey++
			}
		}
	}
	return n < a.keyHolds && ofKey < lim.KeyConcurrency
}

func (a *admitter) signalUnblocked() {
	select {
	case a.unblocked <- struct{}{}:
	default:
	}
}

// claim claims the first held job not claimed that match wants.
func (a *admitter) claim(match func(*heldJob) bool) *heldJob {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range a.held {
		if !h.claimed && match(h) {
			h.claimed = true
			return h
		}
	}
	return nil
}

// handOn gives back the slots of a job that has finished, but passes its
// queue slot to a job of its queue held here, and its key slot too if that
// job has the same key: the job starts with no round trip to the server,
// and no other worker's job could have started sooner. A job of the same
// key goes first, then one held for its queue, then one of another key.
func (a *admitter) handOn(ctx context.Context, g *grant, info *Info) {
	if g == nil {
		return
	}
	queue := info.Queue
	h := a.claim(func(h *heldJob) bool { return h.d.info.Queue == queue && h.forKey && h.d.info.Key == info.Key })
	if h == nil {
		h = a.claim(func(h *heldJob) bool { return h.d.info.Queue == queue && !h.forKey })
	}
	if h == nil {
		h = a.claim(func(h *heldJob) bool { return h.d.info.Queue == queue })
	}
	if h == nil {
		g.release(ctx)
		return
	}
	slot := g.split("q." + queue + ".")
	if h.d.info.Key == info.Key {
		slot.join(g.split("k." + queue + "."))
	}
	g.release(ctx)
	if time.Since(slot.written) > a.lease/3 {
		// Passed on from job to job, it would run out: it is held
		// for a lease from now, as a running job's slots are.
		slot.renew(ctx)
	}
	a.try(ctx, h, slot)
	slot.release(ctx) // what is left of it: nothing if the job took it
}

// run offers the held jobs again whenever a limit or a slot changes, or a
// wait runs out, until ctx is done; it then hands them back.
func (a *admitter) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-a.lim.changed:
		case <-a.wake:
		case <-timer.C:
		case <-ctx.Done():
			a.handBack()
			return
		}
		next := a.lease / 3
		tried := map[*heldJob]bool{}
		for {
			h := a.claim(func(h *heldJob) bool { return !tried[h] })
			if h == nil {
				break
			}
			tried[h] = true
			if time.Since(h.touched) > a.lease/3 {
				h.d.msg.InProgress()
				h.touched = time.Now()
			}
			if wait, _ := a.try(ctx, h, nil); wait > 0 {
				next = min(next, wait)
			}
		}
		timer.Reset(next)
	}
}

// handBack hands back the jobs held, once the worker stops: only offer
// and handOn, which the worker no longer calls, claim them then.
func (a *admitter) handBack() {
	a.mu.Lock()
	held := a.held
	a.held = nil
	a.mu.Unlock()
	for _, h := range held {
		h.d.msg.Nak()
		if !h.forKey {
			a.uncount()
		}
	}
}

// held counts the slots under prefix held now, as the limiter saw them.
func (l *limiter) held(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, _ := l.occupied(prefix, time.Now())
	return n
}

// occupied counts the slots under prefix held at now, and says when the
// first of them runs out if not renewed. l.mu is held.
func (l *limiter) occupied(prefix string, now time.Time) (n int, soonest time.Time) {
	for key, s := range l.slots {
		rest, ok := strings.CutPrefix(key, prefix+".")
		if !ok || strings.Contains(rest, ".") || !s.until.After(now) {
			continue
		}
		n++
		if soonest.IsZero() || s.until.Before(soonest) {
			soonest = s.until
		}
	}
	return n, soonest
}
