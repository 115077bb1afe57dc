package queue_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goherd/herd/internal/testutil"
	"github.com/goherd/herd/queue"
	"github.com/goherd/herd/queue/internal/embedded"
)

// scheduling is a worker process for the tests of periodic jobs: it runs
// the jobs of kind tick, each appending its id to the file runs, until
// SIGTERM, when it stops as herd work does.
func scheduling(url, runs string) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	c, err := queue.Open(ctx, queue.Config{URL: url})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w, _ := c.NewWorker(queue.WorkerConfig{Concurrency: 2})
	w.Handle("tick", func(_ context.Context, j *queue.Job) ([]byte, error) {
		f, err := os.OpenFile(runs, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		_, err = fmt.Fprintln(f, j.ID)
		return nil, err
	})
	w.Run(ctx)
	c.Close()
}

// startScheduler starts a worker process that schedules and runs ticks.
func startScheduler(t *testing.T, url, runs string) *exec.Cmd {
	t.Helper()
	return startHelper(t, "HERD_QUEUE_TEST_SCHEDULER="+url, "HERD_QUEUE_TEST_RUNS="+runs)
}

// ranTicks returns how many times each tick's job ran, by tick.
func ranTicks(t *testing.T, runs, name string) map[time.Time]int {
	t.Helper()
	b, err := os.ReadFile(runs)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	ran := map[time.Time]int{}
	for id := range strings.FieldsSeq(string(b)) {
		stamp, ok := strings.CutPrefix(id, "cron."+name+".")
		if !ok {
			continue // another schedule's
		}
		tick, err := time.Parse("20060102T150405Z", stamp)
		if err != nil {
			t.Fatalf("job %s: %v", id, err)
		}
		ran[tick]++
	}
	return ran
}

// Two worker processes serving a schedule's queue enqueue each tick once,
// and each tick's job runs once, over 15 seconds of ticks; of the ticks missed
// while no worker ran, the latest is caught up once, when one starts again.
func TestScheduleOncePerTickAcrossProcesses(t *testing.T) {
	t.Parallel()
	ns := startServer(t, embedded.Config{})
	c := open(t, queue.Config{URL: ns.ClientURL()})
	for _, s := range []queue.Schedule{
		{Name: "t", Spec: "@every 1s", Kind: "tick"},
		{Name: "slow", Spec: "@every 5s", Kind: "tick"}, // for the missed ticks
	} {
		if err := c.AddSchedule(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	runs := t.TempDir() + "/runs"
	a := startScheduler(t, ns.ClientURL(), runs)
	b := startScheduler(t, ns.ClientURL(), runs)
	start := time.Now()
	time.Sleep(15 * time.Second)
	for _, p := range []*exec.Cmd{a, b} {
		p.Process.Signal(syscall.SIGTERM)
		p.Wait()
	}
	killed := time.Now()

	// Every whole second from the first tick a scheduler enqueued (on a
	// busy machine the processes take seconds to start, and their first
	// look enqueues only the latest tick missed) to 3s before the kill
	// (a busy machine may also hold a process back for a second or more
	// when a tick comes) has its job.
	first := start.Truncate(time.Second).Add(time.Second)
	for ; ; first = first.Add(time.Second) {
		if first.After(start.Add(10 * time.Second)) {
			t.Fatalf("no tick enqueued in the first 10s after the schedulers started at %v", start)
		}
		if _, err := c.Info(t.Context(), queue.TickID("t", first)); err == nil {
			break
		}
	}
	var window []time.Time
	for tick := first; tick.Before(killed.Add(-3 * time.Second)); tick = tick.Add(time.Second) {
		window = append(window, tick)
		if _, err := c.Info(t.Context(), queue.TickID("t", tick)); err != nil {
			t.Errorf("tick %v: %v", tick, err)
		}
	}

	// No worker while two ticks of the slow schedule pass, then one: it
	// enqueues the latest of them once, when it first looks, and none of
	// the others. (It should look well before the next tick, 4.5s later;
	// a process that a busy machine takes longer to start finds that one
	// the latest.)
	b1 := killed.Truncate(5 * time.Second).Add(5 * time.Second)
	b2 := b1.Add(5 * time.Second)
	time.Sleep(time.Until(b2.Add(500 * time.Millisecond)))
	restarted := time.Now()
	startScheduler(t, ns.ClientURL(), runs)
	var caughtUp time.Time // the first slow tick enqueued from b2 on
	testutil.Eventually(t, fmt.Sprintf("the latest missed tick, %v or later, to be enqueued", b2), func() bool {
		for tick := b2; !tick.After(time.Now()); tick = tick.Add(5 * time.Second) {
			if _, err := c.Info(t.Context(), queue.TickID("slow", tick)); err == nil {
				caughtUp = tick
				return true
			}
		}
		return false
	})
	if info := wait(t, c, queue.TickID("slow", caughtUp)); info.State != queue.Succeeded {
		t.Errorf("the latest missed tick: %+v", info)
	}
	for tick := b1; tick.Before(caughtUp); tick = tick.Add(5 * time.Second) {
		if _, err := c.Info(t.Context(), queue.TickID("slow", tick)); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("an earlier missed tick, %v, was enqueued too (%v); want only the latest, %v", tick, err, caughtUp)
		}
	}
	// The fast schedule's missed ticks before the restart are skipped as well:
	// its catch-up tick is the latest when the new worker first looks.
	var missed []time.Time
	for tick := killed.Truncate(time.Second).Add(time.Second); tick.Before(restarted.Truncate(time.Second)); tick = tick.Add(time.Second) {
		if _, err := c.Info(t.Context(), queue.TickID("t", tick)); err == nil {
			missed = append(missed, tick)
		}
	}
	if len(missed) > 0 {
		t.Errorf("ticks missed between %v and %v that were enqueued: %v; want none", killed, restarted, missed)
	}
	// Each tick's job ran once (any the stopped workers left are run by
	// the new one).
	for _, tick := range window {
		wait(t, c, queue.TickID("t", tick))
	}
	ran := ranTicks(t, runs, "t")
	for tick, n := range ran {
		if n != 1 {
			t.Errorf("tick %v ran %d times, want once", tick, n)
		}
	}
	for _, tick := range window {
		if ran[tick.UTC()] != 1 {
			t.Errorf("tick %v ran %d times, want once", tick, ran[tick.UTC()])
		}
	}
	t.Logf("%d ticks, %d of them run once each by two processes; the latest of the missed ticks caught up", len(ran), len(window))
}

func TestScheduleAdmin(t *testing.T) {
	t.Parallel()
	c := open(t, queue.Config{Dir: t.TempDir()})
	s := queue.Schedule{Name: "nightly", Spec: "CRON_TZ=Europe/Paris 0 2 * * *", Kind: "report", Options: queue.Options{Queue: "reports", Priority: queue.Low}}
	if err := c.AddSchedule(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	if err := c.AddSchedule(t.Context(), s); !errors.Is(err, queue.ErrScheduleExists) {
		t.Errorf("adding it again = %v, want ErrScheduleExists", err)
	}
	for _, bad := range []queue.Schedule{
		{Name: "x", Spec: "bogus", Kind: "k"},
		{Name: "bad.name", Spec: "@hourly", Kind: "k"},
		{Name: "x", Spec: "@hourly"},
		{Name: "x", Spec: "@hourly", Kind: "k", Options: queue.Options{ID: "fixed"}},
		{Name: "x", Spec: "@hourly", Kind: "k", Options: queue.Options{Delay: time.Minute}},
	} {
		if err := c.AddSchedule(t.Context(), bad); err == nil {
			t.Errorf("AddSchedule(%+v) = nil, want an error", bad)
		}
	}
	all, err := c.Schedules(t.Context())
	if err != nil || len(all) != 1 || all[0].Name != "nightly" || all[0].Options.Queue != "reports" || all[0].Added.IsZero() {
		t.Fatalf("Schedules = %+v, %v", all, err)
	}
	if next, err := all[0].NextTick(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)); err != nil || !next.Equal(time.Date(2026, 7, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("next tick = %v, %v; want 2am in Paris, midnight UTC in summer", next.UTC(), err)
	}
	if err := c.RemoveSchedule(t.Context(), "nightly"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveSchedule(t.Context(), "nightly"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("removing it again = %v, want ErrNotFound", err)
	}
	if all, _ := c.Schedules(t.Context()); len(all) != 0 {
		t.Errorf("Schedules after removing = %+v", all)
	}
}
