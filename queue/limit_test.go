package queue_test

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/goherd/herd/internal/testutil"
	"github.com/goherd/herd/queue"
	"github.com/goherd/herd/queue/internal/embedded"
	"github.com/goherd/herd/queue/queuetest"
)

// limitedWorker is a worker process of the tests of limits: 8 jobs at once,
// a lease of 1s (so that a killed one's slots come free soon), running
// "limited" jobs that sleep for the milliseconds in their payload (a job
// whose payload starts with "fail" fails its first attempt), noting
// "start PID ID KEY NANOS" and "end PID ID KEY NANOS" in the log file.
func limitedWorker(url, log string) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	c, err := queue.Open(ctx, queue.Config{URL: url})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()
	f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w, _ := c.NewWorker(queue.WorkerConfig{Queues: []string{"limited"}, Concurrency: 8, Lease: time.Second, Backoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	w.Handle("limited", func(ctx context.Context, j *queue.Job) ([]byte, error) {
		note := func(what string) { // one write each: lines do not mix
			fmt.Fprintf(f, "%s %d %s %s %d\n", what, os.Getpid(), j.ID, cmp.Or(j.Key, "-"), time.Now().UnixNano())
		}
		note("start")
		defer note("end")
		payload := string(j.Payload)
		if rest, ok := strings.CutPrefix(payload, "fail"); ok {
			payload = rest
			if j.Attempt == 1 {
				return nil, errors.New("the first attempt fails")
			}
		}
		ms, _ := strconv.Atoi(payload)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return nil, nil
	})
	w.Run(ctx)
}

// startLimited starts a limitedWorker process, killed when the test ends
// if it still runs.
func startLimited(t *testing.T, url, log string) *exec.Cmd {
	t.Helper()
	return startHelper(t, "HERD_QUEUE_TEST_LIMITED="+url, "HERD_QUEUE_TEST_LOG="+log)
}

// event is a line of the log of limitedWorker processes, or a mark the
// test wrote there.
type event struct {
	what, pid, id, key string
	at                 time.Time
}

func readEvents(t *testing.T, log string) []event {
	t.Helper()
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []event
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		fs := strings.Fields(lines.Text())
		e := event{what: fs[0], pid: fs[1]}
		if len(fs) == 5 {
			e.id, e.key = fs[2], fs[3]
			n, _ := strconv.ParseInt(fs[4], 10, 64)
			e.at = time.Unix(0, n)
		}
		events = append(events, e)
	}
	return events
}

// mark notes in the log what the test did, between the workers' lines.
func mark(t *testing.T, log, what, pid string) {
	t.Helper()
	f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s\n", what, pid)
}

// replay goes through the log in order, calling see after each change with
// how many jobs ran then, in all and of the key of the job that changed. A
// "killed PID" mark ends the jobs the killed process was running.
func replay(events []event, see func(e event, running, ofKey int)) {
	running := map[string]map[string]bool{} // pid → ids
	byKey := map[string]int{}
	keyOf := map[string]string{}
	total := 0
	for _, e := range events {
		switch e.what {
		case "start":
			if running[e.pid] == nil {
				running[e.pid] = map[string]bool{}
			}
			running[e.pid][e.id] = true
			keyOf[e.id] = e.key
			total++
			byKey[e.key]++
		case "end":
			if running[e.pid][e.id] {
				delete(running[e.pid], e.id)
				total--
				byKey[e.key]--
			}
		case "killed":
			for id := range running[e.pid] {
				total--
				byKey[keyOf[id]]--
			}
			delete(running, e.pid)
		}
		see(e, total, byKey[e.key])
	}
}

// Three worker processes of 8 jobs each on a queue limited to 5 at once run
// exactly 5 at once while jobs wait, also while one of them is killed with
// SIGKILL and started again, and after a failed attempt (a retry gives its
// slot back while it waits). A limit raised while jobs run counts at once.
func TestConcurrencyLimitAcrossProcesses(t *testing.T) {
	// Not in parallel with the other tests: what it measures, how soon
	// every limit is reached, takes round trips to the server, which a
	// machine starved of CPU slows (beside seven other tests on two cores,
	// at most 4 ran at once after the limit was raised to 7).
	ns := startServer(t, embedded.Config{})
	url := ns.ClientURL()
	c := open(t, queue.Config{URL: url})
	if err := c.SetLimits(t.Context(), "limited", queue.Limits{Concurrency: 5}); err != nil {
		t.Fatal(err)
	}
	log := t.TempDir() + "/log"
	mark(t, log, "begin", "-")
	var ids []string
	// Jobs of 300ms: a busy machine's delay in filling a freed slot (25ms
	// median, 60ms at the 90th percentile with two suites running beside)
	// is small beside them, so each limit is reached; with 100ms jobs the
	// limit of 7 once peaked at 6.
	for i := range 150 {
		payload := "300"
		if i%10 == 3 {
			payload = "fail300"
		}
		id, err := c.Enqueue(t.Context(), "limited", []byte(payload), queue.Options{Queue: "limited", Key: fmt.Sprintf("k%d", i%4)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	workers := []*exec.Cmd{startLimited(t, url, log), startLimited(t, url, log), startLimited(t, url, log)}

	// Kill one when 40 jobs have started, and start another.
	started := func() int {
		n := 0
		for _, e := range readEvents(t, log) {
			if e.what == "start" {
				n++
			}
		}
		return n
	}
	testutil.Eventually(t, "40 jobs to start", func() bool { return started() >= 40 })
	workers[0].Process.Signal(syscall.SIGKILL)
	workers[0].Wait()
	mark(t, log, "killed", strconv.Itoa(workers[0].Process.Pid))
	startLimited(t, url, log)

	// Raise the limit when 80 have started: enough are left to reach the
	// new limit even if a busy machine delays the workers' seeing it.
	testutil.Eventually(t, "80 jobs to start", func() bool { return started() >= 80 })
	if err := c.SetLimits(t.Context(), "limited", queue.Limits{Concurrency: 7}); err != nil {
		t.Fatal(err)
	}
	mark(t, log, "raised", "-")
	for _, id := range ids {
		if info := wait(t, c, id); info.State != queue.Succeeded {
			t.Errorf("job %s: %+v", id, info)
		}
	}

	limit, peakBefore, peakAfter := 5, 0, 0
	replay(readEvents(t, log), func(e event, running, _ int) {
		if e.what == "raised" {
			limit = 7
		}
		if running > limit {
			t.Errorf("%d jobs ran at once at %s of %s; the limit was %d", running, e.what, e.id, limit)
		}
		if limit == 5 {
			peakBefore = max(peakBefore, running)
		} else {
			peakAfter = max(peakAfter, running)
		}
	})
	if peakBefore != 5 || peakAfter != 7 {
		t.Errorf("at most %d ran at once under a limit of 5, and %d under 7; want each limit reached", peakBefore, peakAfter)
	}
	gaps := slotGaps(readEvents(t, log), 5)
	t.Logf("a slot freed under the limit of 5 was taken again after %v (median), %v (90th percentile), over %d starts", gaps[len(gaps)/2], gaps[len(gaps)*9/10], len(gaps))
}

// slotGaps returns, sorted, how long after a job ended the next started,
// for each start while fewer than limit jobs ran and jobs were waiting (up
// to the last start; not across a kill, whose slots run out with the lease).
func slotGaps(events []event, limit int) []time.Duration {
	var gaps []time.Duration
	var freedAt time.Time
	killed := false
	replay(events, func(e event, running, _ int) {
		switch {
		case e.what == "killed" || e.what == "raised":
			killed, freedAt = e.what == "killed", time.Time{}
		case e.what == "end" && running == limit-1 && !killed:
			freedAt = e.at
		case e.what == "start" && !freedAt.IsZero():
			gaps = append(gaps, e.at.Sub(freedAt))
			freedAt = time.Time{}
		case e.what == "start" && running == limit:
			killed = false // the killed worker's slots are all taken again
		}
	})
	slices.Sort(gaps)
	if len(gaps) == 0 {
		gaps = append(gaps, 0)
	}
	return gaps
}

// Under a limit of 2 at once per key, 10 keys' jobs enqueued one key after
// another run at most 2 of a key at once, and every key starts while the
// first key's jobs still start (not one key after another); under a rate
// of 20 a second with a burst of 2, no second has more starts than the
// rate allows.
func TestKeyAndRateLimitsAcrossProcesses(t *testing.T) {
	// Not in parallel with the other tests: what it measures, how soon
	// every key is reached, takes round trips to the server, which a
	// machine starved of CPU slows (see below).
	ns := startServer(t, embedded.Config{})
	url := ns.ClientURL()
	c := open(t, queue.Config{URL: url})
	if err := c.SetLimits(t.Context(), "limited", queue.Limits{KeyConcurrency: 2}); err != nil {
		t.Fatal(err)
	}
	log := t.TempDir() + "/log"
	mark(t, log, "begin", "-")
	enqueue := func(n int, key func(int) string) []string {
		var ids []string
		for i := range n {
			// Jobs of 300ms: the first key's 20 jobs, 2 at once, take
			// 2.7s to start, time enough for the workers to reach the
			// last key's, even on a busy machine (with 100ms, CI once
			// started the last key only after the first key's last job).
			id, err := c.Enqueue(t.Context(), "limited", []byte("300"), queue.Options{Queue: "limited", Key: key(i)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		return ids
	}
	ids := enqueue(200, func(i int) string { return fmt.Sprintf("customer%d", i/20) })
	began := time.Now()
	for range 3 {
		startLimited(t, url, log)
	}
	for _, id := range ids {
		wait(t, c, id)
	}
	keysTook := time.Since(began)
	firstStart := map[string]int{} // by key: how many jobs had started before its first
	lastStart := map[string]int{}  // by key: how many jobs had started before its last
	starts := 0
	peaks := map[string]int{}
	replay(readEvents(t, log), func(e event, _, ofKey int) {
		if e.what != "start" {
			return
		}
		if _, ok := firstStart[e.key]; !ok {
			firstStart[e.key] = starts
		}
		lastStart[e.key] = starts
		starts++
		peaks[e.key] = max(peaks[e.key], ofKey)
	})
	// Every key starts before the first key's last job does: the keys do
	// not go one after another. (How early they start depends on how busy
	// the machine is: with jobs of 100ms, quiet, every key started within
	// the first 40 or so of the 200 starts; with two more copies of this
	// test at once on two cores, the last key after 120 to 140.)
	for key, peak := range peaks {
		if peak != 2 {
			t.Errorf("key %s: at most %d of its jobs ran at once; want the limit, 2", key, peak)
		}
		if firstStart[key] > lastStart["customer0"] {
			t.Errorf("key %s started after %d of %d starts, when the first key, customer0, had started all its jobs: keys went one after another", key, firstStart[key], starts)
		}
	}
	if len(peaks) != 10 {
		t.Errorf("%d keys ran, want 10", len(peaks))
	}

	// The rate: the starts of any second but the first are at most the
	// rate, and the burst once.
	if err := c.SetLimits(t.Context(), "limited", queue.Limits{Rate: 20, Burst: 2}); err != nil {
		t.Fatal(err)
	}
	mark(t, log, "rate", "-")
	ids = enqueue(80, func(int) string { return "" })
	for _, id := range ids {
		wait(t, c, id)
	}
	var times []time.Time
	rated := false
	for _, e := range readEvents(t, log) {
		rated = rated || e.what == "rate"
		if rated && e.what == "start" {
			times = append(times, e.at)
		}
	}
	slices.SortFunc(times, time.Time.Compare)
	busiest := 0
	for i := range times {
		j, _ := slices.BinarySearchFunc(times, times[i].Add(time.Second), time.Time.Compare)
		busiest = max(busiest, j-i)
	}
	// A start is noted a moment after it was allowed, so a second of
	// notes may hold one more than a second of starts.
	if busiest > 20+2+1 {
		t.Errorf("%d starts in one second under a rate of 20/s with a burst of 2", busiest)
	}
	span := times[len(times)-1].Sub(times[0])
	t.Logf("keys: 200 jobs of 300ms, 20 at once, took %v (workers' start included); each started within the first %d of %d starts; rate: %d starts in %v (%.1f/s), at most %d in a second", keysTook.Round(time.Millisecond), slices.Max(slices.Collect(maps.Values(firstStart))), starts, len(times), span.Round(time.Millisecond), float64(len(times)-1)/span.Seconds(), busiest)
}

func TestRatesReadAndWritten(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		rate float64
		out  string
	}{
		{"50/s", 50, "50/s"},
		{"50", 50, "50/s"},
		{" 2.5/s ", 2.5, "2.5/s"},
		{"30/m", 0.5, "30/m"},
		{"90/m", 1.5, "1.5/s"},
		{"2/h", 2.0 / 3600, "2/h"},
		{"0", 0, "0"},
	} {
		r, err := queue.ParseRate(c.in)
		if err != nil || r != c.rate {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", c.in, r, err, c.rate)
			continue
		}
		if got := queue.FormatRate(r); got != c.out {
			t.Errorf("FormatRate(%v) = %q, want %q", r, got, c.out)
		}
	}
	for _, bad := range []string{"", "x/s", "-1/s", "5/d", "Inf", "NaN/s"} {
		if r, err := queue.ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) = %v, want an error", bad, r)
		}
	}
}

func TestLimitsRefusedBeforeStored(t *testing.T) {
	t.Parallel()
	c := open(t, queue.Config{URL: startServer(t, embedded.Config{}).ClientURL()})
	ctx := t.Context()
	for _, l := range []queue.Limits{
		{Concurrency: -1},
		{KeyConcurrency: 10_001},
		{Rate: -2},
		{Burst: 3},
		{Rate: 1e-9},
	} {
		if err := c.SetLimits(ctx, "q", l); err == nil {
			t.Errorf("SetLimits(%+v) stored limits that cannot hold", l)
		}
	}
	if err := c.SetLimits(ctx, "a b", queue.Limits{Concurrency: 1}); err == nil {
		t.Error(`SetLimits("a b") took a queue name with a space`)
	}
	if all, err := c.Limits(ctx); err != nil || len(all) != 0 {
		t.Errorf("Limits after refused changes = %v, %v; want none", all, err)
	}
	want := queue.Limits{Concurrency: 3, Rate: 0.5, Burst: 2}
	if err := c.SetLimits(ctx, "q", want); err != nil {
		t.Fatal(err)
	}
	if all, err := c.Limits(ctx); err != nil || all["q"] != want {
		t.Errorf("Limits = %v, %v; want q: %v", all, err, want)
	}
	if got := want.String(); got != "at most 3 at once, at most 30/m (burst 2)" {
		t.Errorf("String() = %q", got)
	}
	if err := c.SetLimits(ctx, "q", queue.Limits{}); err != nil {
		t.Fatal(err)
	}
	if all, err := c.Limits(ctx); err != nil || len(all) != 0 {
		t.Errorf("Limits after clearing = %v, %v; want none", all, err)
	}
}

// Stats show a limited queue's limits, its slots held and the jobs
// workers hold for a slot; jobs held start once the limits are cleared.
func TestStatsShowLimits(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	ctx := t.Context()
	if err := c.SetLimits(ctx, "q", queue.Limits{Concurrency: 1}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var running atomic.Int32
	queuetest.Work(t, c, queue.WorkerConfig{Queues: []string{"q"}, Concurrency: 4}, map[string]queue.Handler{
		"block": func(ctx context.Context, _ *queue.Job) ([]byte, error) {
			running.Add(1)
			defer running.Add(-1)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil
		},
	})
	var ids []string
	for range 3 {
		id, err := c.Enqueue(ctx, "block", nil, queue.Options{Queue: "q"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	var last queue.QueueLimits
	testutil.Eventually(t, "stats to show 1 job running and 1 held for the queue's one slot", func() bool {
		st, err := c.Stats(ctx)
		if err != nil || len(st.Limits) != 1 {
			return false
		}
		last = st.Limits[0]
		return last.Running == 1 && last.Held == 1
	})
	if want := (queue.QueueLimits{Queue: "q", Limits: queue.Limits{Concurrency: 1}, Running: 1, Held: 1}); last != want {
		t.Errorf("Stats().Limits[0] = %+v, want %+v", last, want)
	}
	if n := running.Load(); n != 1 {
		t.Errorf("%d jobs run at once under a limit of 1", n)
	}
	if err := c.SetLimits(ctx, "q", queue.Limits{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the 3 jobs to run at once once the limit is cleared", func() bool { return running.Load() == 3 })
	close(release)
	for _, id := range ids {
		if info := wait(t, c, id); info.State != queue.Succeeded {
			t.Errorf("job %s = %+v, want succeeded", id, info)
		}
	}
	if st, err := c.Stats(ctx); err != nil || len(st.Limits) != 0 {
		t.Errorf("Stats().Limits after clearing = %+v, %v; want none", st.Limits, err)
	}
}
