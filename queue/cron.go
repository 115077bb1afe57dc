package queue

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/robfig/cron/v3"
)

// Periodic jobs. A schedule lives in the queue (a key-value bucket of its
// own, with no expiry), so it survives restarts and every worker sees it.
// Every worker serving a schedule's queue enqueues its jobs (see
// Worker.Run), each tick's job with an id made from the schedule's name and
// the tick's time: however many workers enqueue a tick, the queue stores
// the first and drops the others as it drops any job whose id it has seen.
// So there is no leader to elect, and no tick is lost while one worker runs.
//
// Ticks missed while no worker ran are handled so: when a worker starts
// (or first sees a schedule), it enqueues the latest tick missed since the
// schedule was added, once, and none before it.

const scheduleBucket = "HERD_SCHEDULES"

// Schedule is a job enqueued on a schedule: see [Client.AddSchedule].
type Schedule struct {
	// Name identifies the schedule: letters, digits and - _ = /.
	Name string `json:"name"`
	// Spec says when: a cron expression with the seconds field optional
	// ("*/5 * * * *", "0 30 9 * * MON-FRI"), a descriptor ("@hourly",
	// "@daily", ...) or "@every 5m" (ticks at multiples of the duration
	// since the Unix epoch). Times are UTC unless the spec starts with
	// CRON_TZ=Zone/Name, as in "CRON_TZ=Europe/Paris 0 9 * * *".
	Spec string `json:"spec"`
	// Kind, Payload and Options are those of each job (see
	// [Client.Enqueue]); Options.ID, RunAt and Delay must be zero.
	Kind    string    `json:"kind"`
	Payload []byte    `json:"payload,omitempty"`
	Options Options   `json:"options"`
	Added   time.Time `json:"added"` // set by AddSchedule
}

// ErrScheduleExists is returned when adding a schedule whose name is taken.
var ErrScheduleExists = errors.New("queue: a schedule of that name exists")

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ticker gives the ticks of a schedule.
type ticker interface {
	Next(time.Time) time.Time
}

// every ticks at the multiples of a duration since the Unix epoch, so that
// every worker agrees on the ticks (cron's own @every counts from the time
// it is asked).
type every time.Duration

func (e every) Next(t time.Time) time.Time {
	d := time.Duration(e)
	return t.Truncate(d).Add(d)
}

// parseSpec parses a schedule's spec.
func parseSpec(spec string) (ticker, error) {
	if rest, ok := strings.CutPrefix(strings.TrimSpace(spec), "@every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil || d < time.Second {
			return nil, fmt.Errorf("schedule %q: want @every and a duration of a second or more", spec)
		}
		return every(d), nil
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", spec, err)
	}
	return s, nil
}

// latestTick returns the latest tick of t at or before now and after
// since, or the zero time if there is none (looking back at most a year).
func latestTick(t ticker, since, now time.Time) time.Time {
	if e, ok := t.(every); ok {
		if tick := now.Truncate(time.Duration(e)); tick.After(since) {
			return tick
		}
		return time.Time{}
	}
	// Look back over longer and longer windows: a tick every second is
	// found in the first, a yearly one in the last.
	for _, window := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 32 * 24 * time.Hour, 366 * 24 * time.Hour} {
		from := now.Add(-window)
		if from.Before(since) {
			from = since
		}
		var latest time.Time
		tick := t.Next(from)
		for i := 0; !tick.IsZero() && !tick.After(now) && i < 100_000; i++ {
			latest, tick = tick, t.Next(tick)
		}
		if !latest.IsZero() || !from.After(since) {
			return latest
		}
	}
	return time.Time{}
}

// tickID is the id of a schedule's job for one tick.
func tickID(name string, tick time.Time) string {
	return "cron." + name + "." + tick.UTC().Format("20060102T150405Z")
}

// AddSchedule adds a periodic job. Its first tick is the first after now.
func (c *Client) AddSchedule(ctx context.Context, s Schedule) error {
	if !validQueue(s.Name) {
		return fmt.Errorf("queue: add schedule: name %q: want letters, digits and - _ = /", s.Name)
	}
	if _, err := parseSpec(s.Spec); err != nil {
		return fmt.Errorf("queue: add schedule %s: %w", s.Name, err)
	}
	if s.Options.ID != "" || !s.Options.RunAt.IsZero() || s.Options.Delay != 0 {
		return fmt.Errorf("queue: add schedule %s: its jobs' ids and times come from the schedule: leave ID, RunAt and Delay out", s.Name)
	}
	// The job must be one Enqueue takes.
	probe := s.Options
	probe.ID = tickID(s.Name, time.Now())
	if _, err := newInfo(NewJob{Kind: s.Kind, Payload: s.Payload, Options: probe}, time.Now()); err != nil {
		return fmt.Errorf("queue: add schedule %s: %w", s.Name, err)
	}
	s.Added = time.Now().UTC()
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("queue: add schedule %s: %w", s.Name, err)
	}
	if _, err := c.schedules.Create(ctx, s.Name, b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("%w: %s", ErrScheduleExists, s.Name)
		}
		return fmt.Errorf("queue: add schedule %s: %w", s.Name, err)
	}
	if err := c.durable(); err != nil {
		return fmt.Errorf("queue: add schedule %s: %w", s.Name, err)
	}
	return nil
}

// RemoveSchedule removes a periodic job's schedule. Jobs it enqueued
// already stay.
func (c *Client) RemoveSchedule(ctx context.Context, name string) error {
	if _, err := c.schedules.Get(ctx, name); errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return fmt.Errorf("%w: schedule %s", ErrNotFound, name)
	}
	if err := c.schedules.Purge(ctx, name); err != nil {
		return fmt.Errorf("queue: remove schedule %s: %w", name, err)
	}
	if err := c.durable(); err != nil {
		return fmt.Errorf("queue: remove schedule %s: %w", name, err)
	}
	return nil
}

// Schedules returns the periodic jobs' schedules, by name.
func (c *Client) Schedules(ctx context.Context) ([]*Schedule, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the listing if an error ends the loop early
	keys, err := c.schedules.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: schedules: %w", err)
	}
	var out []*Schedule
	for key := range keys.Keys() {
		e, err := c.schedules.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("queue: schedule %s: %w", key, err)
		}
		s := new(Schedule)
		if err := json.Unmarshal(e.Value(), s); err != nil {
			return nil, fmt.Errorf("queue: schedule %s: %w", key, err)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *Schedule) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// NextTick returns the first tick of s after t.
func (s *Schedule) NextTick(t time.Time) (time.Time, error) {
	tk, err := parseSpec(s.Spec)
	if err != nil {
		return time.Time{}, err
	}
	return tk.Next(t), nil
}

// schedule enqueues the jobs of the schedules of the worker's queues, tick
// by tick, until ctx is done. It watches the bucket of schedules, so that a
// schedule added or removed counts at once. What it has enqueued survives a
// watch that ends and starts again: a tick is skipped only while no worker
// runs (see the package's comment on missed ticks).
func (w *Worker) schedule(ctx context.Context) {
	seen := map[scheduled]time.Time{}
	for wait := time.Second; ctx.Err() == nil; wait = min(2*wait, time.Minute) {
		watcher, err := w.c.schedules.WatchAll(ctx)
		if err == nil {
			w.tick(ctx, watcher, seen)
			watcher.Stop()
			continue
		}
		w.c.log.Warn("queue: schedules unreadable; trying again", "error", err, "in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
}

// scheduled names one schedule as added: a schedule removed and added again
// under its name is a new one, whose missed ticks count from its own start.
type scheduled struct {
	name  string
	added time.Time
}

// retryTick is how long a worker waits before enqueueing again a tick whose
// job it could not store.
const retryTick = time.Second

// tick runs the schedules the watcher reports until ctx is done or the
// watch ends. seen holds, by schedule, the time up to which its ticks are
// enqueued.
func (w *Worker) tick(ctx context.Context, watcher jetstream.KeyWatcher, seen map[scheduled]time.Time) {
	served := map[string]bool{}
	for _, q := range w.cfg.Queues {
		served[q] = true
	}
	scheds := map[string]*Schedule{}
	tickers := map[string]ticker{}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		wake := now.Add(time.Hour)
		for name, s := range scheds {
			tk, key := tickers[name], scheduled{name, s.Added}
			from, ok := seen[key]
			if !ok {
				// First look: the latest tick missed since the schedule
				// was added, once.
				from = now
				if tick := latestTick(tk, s.Added, now); !tick.IsZero() && !w.enqueueTick(ctx, s, tick) {
					from = tick.Add(-time.Nanosecond) // owed: tried again below
				}
			}
			for tick := tk.Next(from); !tick.IsZero() && !tick.After(now); tick = tk.Next(tick) {
				if !w.enqueueTick(ctx, s, tick) {
					now = tick.Add(-time.Nanosecond) // owed from this tick on
					if retry := time.Now().Add(retryTick); retry.Before(wake) {
						wake = retry
					}
					break
				}
			}
			seen[key] = now
			if next := tk.Next(now); !next.IsZero() && next.Before(wake) {
				wake = next
			}
		}
		timer.Reset(time.Until(wake))
		select {
		case e, open := <-watcher.Updates():
			if !open {
				return
			}
			if e == nil {
				continue // the schedules there now are all in
			}
			name := e.Key()
			if old := scheds[name]; old != nil {
				delete(seen, scheduled{name, old.Added})
			}
			delete(scheds, name)
			delete(tickers, name)
			if e.Operation() != jetstream.KeyValuePut {
				continue // removed
			}
			s := new(Schedule)
			if err := json.Unmarshal(e.Value(), s); err != nil {
				w.c.log.Warn("queue: bad schedule", "name", name, "error", err)
				continue
			}
			tk, err := parseSpec(s.Spec)
			if err != nil || !served[cmp.Or(s.Options.Queue, "default")] {
				continue
			}
			scheds[name], tickers[name] = s, tk
		case <-timer.C:
		case <-ctx.Done():
			return
		}
	}
}

// enqueueTick enqueues the job of one tick of s, and reports whether it is
// stored (by this worker or, with the same id, by another).
func (w *Worker) enqueueTick(ctx context.Context, s *Schedule, tick time.Time) bool {
	opts := s.Options
	opts.ID = tickID(s.Name, tick)
	_, err := w.c.Enqueue(ctx, s.Kind, s.Payload, opts)
	if err != nil && ctx.Err() == nil {
		w.c.log.Warn("queue: periodic job not enqueued; trying again", "schedule", s.Name, "tick", tick, "error", err, "in", retryTick)
	}
	return err == nil
}
