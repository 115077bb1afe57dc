package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goherd/herd/internal/run/remote"
	"github.com/goherd/herd/internal/testutil"
	"github.com/goherd/herd/queue"
)

// A queue server, two workers and herd run --queue give the output, job
// log and exit status that herd run gives locally.
func TestQueueRunLikeLocal(t *testing.T) {
	t.Parallel()
	url := serveQueue(t)
	startWorkers(t, url, 2, "-j", "3")
	dir := t.TempDir()
	command := `printf '%s %s\n' {} $(( {} * 2 )); echo err {} >&2; [ $(( {} % 50 )) != 0 ]`
	for _, opts := range [][]string{{"-k"}, {"-k", "--tag"}, {"--retries", "2"}} {
		run := func(where ...string) (string, string, []string, int) {
			args := append([]string{"run"}, where...)
			args = append(args, opts...)
			args = append(args, "--joblog", "log.tsv", command, ":::")
			p := startProc(t, dir, nil, append(args, inputs(300)...)...)
			st := p.status(t)
			return p.out.String(), p.errOut.String(), jobRows(t, filepath.Join(dir, "log.tsv")), st
		}
		localOut, localErr, localRows, localStatus := run()
		remoteOut, remoteErr, remoteRows, remoteStatus := run("--queue", url)
		if localStatus != 6 || remoteStatus != localStatus {
			t.Errorf("%v: exit status %d here, %d on the queue; want 6 (jobs 50, 100, ..., 300 fail)", opts, localStatus, remoteStatus)
		}
		if opts[0] == "-k" && remoteOut != localOut {
			t.Errorf("%v: output on the queue differs from the local output:\n%s\nwant:\n%s", opts, remoteOut, localOut)
		}
		if opts[0] != "-k" {
			lo, ro := strings.Split(localOut, "\n"), strings.Split(remoteOut, "\n")
			slices.Sort(lo)
			slices.Sort(ro)
			if !slices.Equal(lo, ro) {
				t.Errorf("%v: output lines on the queue differ from the local ones", opts)
			}
		}
		if len(remoteRows) != 300 || !slices.Equal(remoteRows, localRows) {
			t.Errorf("%v: job log on the queue (%d rows) differs from the local one (%d rows)", opts, len(remoteRows), len(localRows))
		}
		// Error output: the same lines, plus the line naming the run.
		if n := strings.Count(remoteErr, "err "); n != 300 || strings.Count(localErr, "err ") != 300 {
			t.Errorf("%v: %d lines of error output on the queue, want 300", opts, n)
		}
		if !strings.Contains(remoteErr, "--attach") {
			t.Errorf("%v: herd run --queue did not say how to attach to the run:\n%s", opts, remoteErr)
		}
	}
}

// --env sends variables and exported functions with the jobs, --nice
// their niceness, and --results keeps their output here, as for a local run.
func TestQueueEnvNiceResults(t *testing.T) {
	t.Parallel()
	url := serveQueue(t)
	startWorkers(t, url, 1, "-j", "2")
	dir := t.TempDir()
	env := []string{"GREETING=hi there", "BASH_FUNC_twice%%=() {  echo $1 $1\n}"}
	p := startProc(t, dir, env, "run", "--queue", url, "--shell", "/bin/bash", "--env", "GREETING", "--env", "twice", "--nice", "3",
		"--results", "out", `echo "$GREETING" {}; twice {}; nice`, ":::", "a", "b")
	if st := p.status(t); st != 0 || p.out.String() != "" {
		t.Fatalf("exit status %d, output %q; want 0 and nothing (it goes to --results); error output:\n%s", st, p.out.String(), p.errOut.String())
	}
	base, err := exec.Command("nice").Output()
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(base)))
	for _, in := range []string{"a", "b"} {
		got, err := os.ReadFile(filepath.Join(dir, "out", "1", in, "stdout"))
		if want := fmt.Sprintf("hi there %s\n%s %s\n%d\n", in, in, in, min(n+3, 19)); err != nil || string(got) != want {
			t.Errorf("job %s wrote %q (%v), want %q", in, got, err, want)
		}
	}
}

// -t with --queue prints a job's line while it runs on a worker, as a
// local run prints it as the job starts.
func TestQueueVerbosePrintsRunningJobs(t *testing.T) {
	t.Parallel()
	url := serveQueue(t)
	startWorkers(t, url, 1, "-j", "2")
	dir := t.TempDir()
	gate := filepath.Join(dir, "go")
	// The job ends once the test has seen its line.
	p := startProc(t, dir, nil, "run", "--queue", url, "-t", "until [ -e "+gate+" ]; do sleep 0.05; done; echo done {}", ":::", "a")
	p.waitOutput(t, `echo done a\n`)
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if st := p.status(t); st != 0 || p.out.String() != "done a\n" || strings.Count(p.errOut.String(), "echo done a") != 1 {
		t.Errorf("exit status %d, output %q, error output:\n%s\nwant 0, done a, and the line once", st, p.out.String(), p.errOut.String())
	}
}

// A worker killed outright mid-run loses nothing: its jobs run on the
// other worker once their lease is out, and each is reported once.
func TestQueueWorkerKilled(t *testing.T) {
	t.Parallel()
	url := serveQueue(t)
	ws := startWorkers(t, url, 2, "-j", "4")
	dir := t.TempDir()
	p := startProc(t, dir, nil, append([]string{"run", "--queue", url, "--joblog", "log.tsv", "touch " + dir + "/started.{}; sleep 0.3; echo done {}", ":::"}, inputs(40)...)...)
	waitFiles(t, dir, "started.1", "started.2", "started.3", "started.4", "started.5", "started.6")
	ws[0].cmd.Process.Signal(syscall.SIGKILL)
	if st := p.status(t); st != 0 {
		t.Fatalf("exit status %d, want 0; error output:\n%s", st, p.errOut.String())
	}
	assertEachOnce(t, p.out.String(), 40)
	if rows := jobRows(t, filepath.Join(dir, "log.tsv")); len(rows) != 40 {
		t.Errorf("job log has %d rows, want 40", len(rows))
	}
}

// A worker stopped with SIGTERM hands back the jobs that do not finish in
// its shutdown timeout; another worker runs them; nothing is lost.
func TestQueueWorkerTerminated(t *testing.T) {
	t.Parallel()
	url := serveQueue(t)
	ws := startWorkers(t, url, 2, "-j", "2", "--shutdown-timeout", "300ms")
	dir := t.TempDir()
	p := startProc(t, dir, nil, append([]string{"run", "--queue", url, "touch " + dir + "/started.{}; sleep 1; echo done {}", ":::"}, inputs(12)...)...)
	waitFiles(t, dir, "started.1", "started.2", "started.3", "started.4")
	ws[0].cmd.Process.Signal(syscall.SIGTERM)
	if st := ws[0].status(t); st != 128+int(syscall.SIGTERM) {
		t.Errorf("worker exit status %d, want %d", st, 128+int(syscall.SIGTERM))
	}
	if !strings.Contains(ws[0].errOut.String(), "taking no more jobs") {
		t.Errorf("worker said:\n%s\nwant a word on stopping", ws[0].errOut.String())
	}
	if st := p.status(t); st != 0 {
		t.Fatalf("exit status %d, want 0; error output:\n%s", st, p.errOut.String())
	}
	assertEachOnce(t, p.out.String(), 12)
}

// The submitter killed mid-run: the jobs run on, and attaching to the run
// shows every result, in order with -k, with the right exit status.
func TestQueueSubmitterKilled(t *testing.T) {
	t.Parallel()
	url := serveQueue(t)
	startWorkers(t, url, 1, "-j", "4")
	dir := t.TempDir()
	command := "touch " + dir + "/started.{}; sleep 0.2; echo done {}; [ {} != 7 ]"
	p := startProc(t, dir, nil, append([]string{"run", "--queue", url, command, ":::"}, inputs(20)...)...)
	run := p.waitOutput(t, `run (\w+): all 20 jobs are on the queue`)
	waitFiles(t, dir, "started.2")
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.status(t)

	a := startProc(t, dir, nil, "run", "--queue", url, "--attach", run, "-k", "--joblog", "log.tsv")
	if st := a.status(t); st != 1 {
		t.Errorf("attach: exit status %d, want 1 (job 7 fails); error output:\n%s", st, a.errOut.String())
	}
	var want strings.Builder
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&want, "done %d\n", i)
	}
	if a.out.String() != want.String() {
		t.Errorf("attach printed:\n%s\nwant every job's output in order", a.out.String())
	}
	if rows := jobRows(t, filepath.Join(dir, "log.tsv")); len(rows) != 20 {
		t.Errorf("attach: job log has %d rows, want 20", len(rows))
	}
	bad := startProc(t, dir, nil, "run", "--queue", url, "--attach", "nosuchrun")
	if st := bad.status(t); st != statusError || !strings.Contains(bad.errOut.String(), "no such run") {
		t.Errorf("attach to a run that is not there: status %d, %q", st, bad.errOut.String())
	}
}

// Wrong or missing credentials: a clear error and no access, for every
// command; the right ones work, from the environment too.
func TestQueueCredentials(t *testing.T) {
	t.Parallel()
	url := serveQueue(t, "--user", "herd", "--password", "s3cret")
	dir := t.TempDir()
	for _, args := range [][]string{
		{"work", "--queue", url},
		{"work", "--queue", url, "--user", "herd", "--password", "wrong"},
		{"run", "--queue", url, "--user", "herd", "--password", "wrong", "echo", ":::", "x"},
		{"queue", "stats", "--queue", url, "--token", "guess"},
	} {
		p := startProc(t, dir, nil, args...)
		if st := p.status(t); st != statusError || !strings.Contains(strings.ToLower(p.errOut.String()), "authorization") {
			t.Errorf("herd %v: status %d, error output %q; want 255 and an authorization error", args, st, p.errOut.String())
		}
	}
	startWorkers(t, url, 1, "--user", "herd", "--password", "s3cret")
	p := startProc(t, dir, []string{"HERD_QUEUE_PASSWORD=s3cret"}, "run", "--queue", url, "--user", "herd", "-k", "echo", ":::", "a", "b")
	if st := p.status(t); st != 0 || p.out.String() != "a\nb\n" {
		t.Errorf("with the right password: status %d, output %q, error output %q", st, p.out.String(), p.errOut.String())
	}
}

// herd queue stats, ls, inspect, dead, retry and purge, as tables and as
// JSON.
func TestQueueAdmin(t *testing.T) {
	t.Parallel()
	url := serveQueue(t)
	c, err := queue.Open(t.Context(), queue.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		if _, err := c.Enqueue(t.Context(), "idle-job", nil, queue.Options{ID: fmt.Sprint("idle", i), Queue: "idle"}); err != nil {
			t.Fatal(err)
		}
	}
	// A job that is no command: herd work gives up on it at once.
	if _, err := c.Enqueue(t.Context(), remote.Kind, []byte("not json"), queue.Options{ID: "broken"}); err != nil {
		t.Fatal(err)
	}
	startWorkers(t, url, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if info, err := c.Wait(ctx, "broken"); err != nil || info.State != queue.Dead {
		t.Fatalf("broken job: %+v, %v; want dead", info, err)
	}
	dir := t.TempDir()
	herd := queueCLI(t, dir, url)

	out, st := herd("queue", "stats")
	if st != 0 || !regexp.MustCompile(`idle\s+default\s+3\s`).MatchString(out) || !strings.Contains(out, "dead jobs: 1") {
		t.Errorf("queue stats: status %d:\n%s", st, out)
	}
	out, _ = herd("queue", "stats", "--json")
	var stats queue.Stats
	if err := json.Unmarshal([]byte(out), &stats); err != nil || stats.Dead != 1 {
		t.Errorf("queue stats --json = %s (%v)", out, err)
	}
	out, st = herd("queue", "ls", "--queue-name", "idle")
	if st != 0 || strings.Count(out, "idle-job") != 3 || !strings.Contains(out, "queued") {
		t.Errorf("queue ls: status %d:\n%s", st, out)
	}
	out, _ = herd("queue", "ls", "--json", "--limit", "2")
	var infos []queue.Info
	if err := json.Unmarshal([]byte(out), &infos); err != nil || len(infos) != 2 || infos[0].ID != "idle0" {
		t.Errorf("queue ls --json --limit 2 = %s (%v)", out, err)
	}
	out, st = herd("queue", "dead")
	if st != 0 || !strings.Contains(out, "broken") || !strings.Contains(out, "not a command job") {
		t.Errorf("queue dead: status %d:\n%s", st, out)
	}
	out, st = herd("queue", "inspect", "broken")
	if st != 0 || !strings.Contains(out, "state:     dead") || !strings.Contains(out, "payload:   not json") {
		t.Errorf("queue inspect: status %d:\n%s", st, out)
	}
	out, st = herd("queue", "inspect", "nosuchjob")
	if st != statusError || !strings.Contains(out, "no such job") {
		t.Errorf("queue inspect of a job that is not there: status %d:\n%s", st, out)
	}
	out, st = herd("queue", "retry", "broken")
	if st != 0 || !strings.Contains(out, "queued again") {
		t.Errorf("queue retry: status %d:\n%s", st, out)
	}
	out, st = herd("queue", "purge", "--queue-name", "idle")
	if st != statusError || !strings.Contains(out, "would remove 3 jobs") {
		t.Errorf("queue purge without --yes: status %d:\n%s", st, out)
	}
	out, st = herd("queue", "purge", "--queue-name", "idle", "--yes")
	if st != 0 || !strings.Contains(out, "removed 3 jobs") {
		t.Errorf("queue purge --yes: status %d:\n%s", st, out)
	}
	out, _ = herd("queue", "ls", "--queue-name", "idle", "--json")
	if strings.TrimSpace(out) != "[]" {
		t.Errorf("queue ls after the purge = %s, want []", out)
	}
	// Every job that had started has its message: nothing to repair.
	out, st = herd("queue", "repair")
	if st != 0 || out != "0 jobs put back\n" {
		t.Errorf("queue repair of a sound queue: status %d:\n%s", st, out)
	}

	// While a run goes on, the default queue settles jobs every second.
	run := startProc(t, dir, nil, append([]string{"run", "--queue", url, "sleep 0.02; echo {}", ":::"}, inputs(400)...)...)
	run.waitOutput(t, "all 400 jobs are on the queue")
	out, _ = herd("queue", "stats", "--json", "--interval", "1s")
	var rates struct {
		Queues []struct {
			Queue    string  `json:"queue"`
			Priority int     `json:"priority"`
			Settled  float64 `json:"settled_per_second"`
		} `json:"queues"`
	}
	if err := json.Unmarshal([]byte(out), &rates); err != nil {
		t.Fatalf("queue stats --json = %s (%v)", out, err)
	}
	busy := false
	for _, q := range rates.Queues {
		busy = busy || (q.Queue == "default" && q.Priority == 0 && q.Settled > 0)
	}
	if !busy {
		t.Errorf("queue stats during a run: %s; want the default queue settling jobs", out)
	}
	if st := run.status(t); st != 0 {
		t.Errorf("the run: status %d", st)
	}
}

// A cluster of three herd queue serve processes keeping every job on all
// three: one killed outright mid-run, the run completes, nothing lost or
// reported twice.
func TestQueueClusterNodeKilled(t *testing.T) {
	t.Parallel()
	ports := testutil.FreePorts(t, 6)
	var routes, urls []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[3+i]))
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	var nodes []*proc
	for i := range 3 {
		nodes = append(nodes, startProc(t, t.TempDir(), nil, "queue", "serve", "--name", fmt.Sprint("n", i),
			"--listen", fmt.Sprintf("127.0.0.1:%d", ports[i]), "--dir", t.TempDir(),
			"--cluster-name", "herd-test", "--cluster-listen", fmt.Sprintf("127.0.0.1:%d", ports[3+i]),
			"--routes", strings.Join(routes, ","), "--replicas", "3"))
	}
	for _, n := range nodes {
		n.waitOutput(t, "queue: ready")
	}
	url := strings.Join(urls, ",")
	startWorkers(t, url, 2, "-j", "4")
	dir := t.TempDir()
	p := startProc(t, dir, nil, append([]string{"run", "--queue", url, "--joblog", "log.tsv", "touch " + dir + "/started.{}; sleep 0.05; echo done {}", ":::"}, inputs(200)...)...)
	waitFiles(t, dir, "started.20")
	nodes[1].cmd.Process.Signal(syscall.SIGKILL)
	if st := p.status(t); st != 0 {
		t.Fatalf("exit status %d, want 0; error output:\n%s", st, p.errOut.String())
	}
	assertEachOnce(t, p.out.String(), 200)
	if rows := jobRows(t, filepath.Join(dir, "log.tsv")); len(rows) != 200 {
		t.Errorf("job log has %d rows, want 200", len(rows))
	}
}

// A queue server killed with kill -9 while herd run --queue is enqueueing,
// and started again a second later on the same folder and port: the run
// goes on once the server is back, every job runs once, and herd run
// exits as a local run would, with one line about the server.
func TestQueueServerRestartWhileEnqueueing(t *testing.T) {
	t.Parallel()
	server := serveFixed(t)
	url := server.url
	startWorkers(t, url, 2, "-j", "4")
	dir := t.TempDir()
	// The input comes slowly, so that the submitter is still enqueueing
	// when the server goes.
	in, feed := io.Pipe()
	const n = 400
	go func() {
		defer feed.Close()
		for i := 1; i <= n; i++ {
			if _, err := fmt.Fprintln(feed, i); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	p := startProcIn(t, dir, nil, in, "run", "--queue", url, "--joblog", "log.tsv", "echo done {}")
	id := p.waitOutput(t, `run (\w+): the jobs go to the queue`)
	time.Sleep(500 * time.Millisecond)
	server.kill(t)
	time.Sleep(time.Second)
	server.start(t)
	if st := p.status(t); st != 0 {
		t.Fatalf("exit status %d, want 0; error output:\n%s", st, p.errOut.String())
	}
	if !assertEachOnce(t, p.out.String(), n) {
		// What herd run and the queue know of the jobs whose output is
		// missing.
		t.Logf("herd run's error output:\n%s", p.errOut.String())
		rows := logRows(t, filepath.Join(dir, "log.tsv"))
		herd := queueCLI(t, dir, url)
		for seq := 1; seq <= n; seq++ {
			if !strings.Contains(p.out.String(), fmt.Sprintf("done %d\n", seq)) {
				out, _ := herd("queue", "inspect", fmt.Sprintf("%s.%d", id, seq))
				t.Logf("job %d: job log row %+v; the queue has:\n%s", seq, rows[seq], out)
			}
		}
	}
	if rows := jobRows(t, filepath.Join(dir, "log.tsv")); len(rows) != n {
		t.Errorf("job log has %d rows, want %d", len(rows), n)
	}
	if lines := strings.Count(p.errOut.String(), "\n"); lines > 10 {
		t.Errorf("herd run wrote %d lines of errors and warnings, want a few:\n%s", lines, p.errOut.String())
	}
}

// herd run --queue killed with kill -9 at moments while it enqueues: the
// run's count never lags behind its jobs on the queue, so --attach shows
// every job that ran, and exits once they have.
func TestQueueAttachAfterSubmitterKilledWhileEnqueueing(t *testing.T) {
	t.Parallel()
	url := serveQueue(t)
	startWorkers(t, url, 1, "-j", "8")
	for _, after := range []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, 700 * time.Millisecond} {
		dir := t.TempDir()
		in, feed := io.Pipe()
		go func() {
			for i := 1; ; i++ {
				if _, err := fmt.Fprintln(feed, i); err != nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		p := startProcIn(t, dir, nil, in, "run", "--queue", url, "touch "+dir+"/ran.{}; echo done {}")
		run := p.waitOutput(t, `run (\w+): the jobs go to the queue`)
		// Killed a while after its first job ran: a busy machine may take
		// longer than the while to enqueue one.
		testutil.Eventually(t, "a job to run", func() bool {
			ran, _ := filepath.Glob(filepath.Join(dir, "ran.*"))
			return len(ran) > 0
		})
		time.Sleep(after)
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.status(t)
		feed.Close()

		a := startProc(t, dir, nil, "run", "--queue", url, "--attach", run)
		if st := a.status(t); st != 0 {
			t.Fatalf("attach after %v: exit status %d, want 0; error output:\n%s", after, st, a.errOut.String())
		}
		shown := strings.Fields(strings.ReplaceAll(a.out.String(), "done ", ""))
		// The workers may still be running jobs that attach did not wait
		// for: count what ran once nothing more does.
		var ran []string
		for stable := 0; stable < 10; {
			now, _ := filepath.Glob(filepath.Join(dir, "ran.*"))
			if len(now) == len(ran) {
				stable++
			} else {
				stable = 0
			}
			ran = now
			time.Sleep(100 * time.Millisecond)
		}
		if len(shown) != len(ran) || len(ran) == 0 {
			var notShown []string
			for _, f := range ran {
				if n := strings.TrimPrefix(filepath.Base(f), "ran."); !slices.Contains(shown, n) {
					notShown = append(notShown, n)
				}
			}
			t.Errorf("killed after %v: attach showed %d jobs, %d ran (not shown: %v); attach said:\n%s", after, len(shown), len(ran), notShown, a.errOut.String())
		}
		slices.Sort(shown)
		if len(slices.Compact(shown)) != len(shown) {
			t.Errorf("killed after %v: attach showed a job twice:\n%s", after, a.out.String())
		}
	}
}

// A queue whose storage fills up mid-run: the workers keep the outcomes
// they cannot store and take no new jobs, so no job runs again and again;
// herd run says the queue is full and leaves the run instead of waiting
// for ever.
func TestQueueFull(t *testing.T) {
	t.Parallel()
	url := serveQueue(t, "--max-store", "2M")
	ws := startWorkers(t, url, 1, "-j", "4")
	dir := t.TempDir()
	// Each job's output is 20kB, which its record keeps: the store fills
	// after about a hundred.
	p := startProc(t, dir, nil, append([]string{"run", "--queue", url, "echo {} >> " + dir + "/ran; head -c 20000 /dev/zero | tr '\\0' x", ":::"}, inputs(300)...)...)
	if st := p.status(t); st != statusError {
		t.Fatalf("exit status %d, want %d; error output:\n%s", st, statusError, p.errOut.String())
	}
	if !strings.Contains(p.errOut.String(), "the queue is full") {
		t.Errorf("herd run did not say the queue is full:\n%s", p.errOut.String())
	}
	runs := timesRun(t, filepath.Join(dir, "ran"))
	for job, n := range runs {
		if n > 2 {
			t.Errorf("job %s ran %d times", job, n)
		}
	}
	if len(runs) == 0 || len(runs) == 300 {
		t.Errorf("%d jobs ran; want some, not all, before the store filled", len(runs))
	}
	if n := strings.Count(ws[0].errOut.String(), "cannot be stored"); n == 0 || n > 20 {
		t.Errorf("the worker said %d times that outcomes cannot be stored, want a few:\n%s", n, ws[0].errOut.String())
	}
}

// herd queue serve killed with jobs waiting, half its block of jobs cut
// off, and started again: the server's warning reaches its log, and herd
// run --queue reports the jobs that are gone as failed instead of waiting
// for them for ever.
func TestQueueDamagedStore(t *testing.T) {
	t.Parallel()
	server := serveFixed(t)
	url := server.url
	dir := t.TempDir()
	const n = 200
	p := startProc(t, dir, nil, append([]string{"run", "--queue", url, "echo done {}", ":::"}, inputs(n)...)...)
	p.waitOutput(t, `all 200 jobs are on the queue`)
	server.kill(t)
	testutil.CutJobs(t, server.data)
	server.start(t)
	startWorkers(t, url, 1, "-j", "4")

	st := p.status(t)
	ran := len(strings.Fields(strings.ReplaceAll(p.out.String(), "done ", "")))
	m := regexp.MustCompile(`(\d+) jobs are gone from the queue`).FindStringSubmatch(p.errOut.String())
	if m == nil {
		t.Fatalf("herd run did not say which jobs are gone (exit status %d):\n%s", st, p.errOut.String())
	}
	gone, _ := strconv.Atoi(m[1])
	if gone == 0 || ran+gone != n {
		t.Errorf("%d jobs ran and %d are gone, want %d in all", ran, gone, n)
	}
	if want := min(gone, 101); st != want {
		t.Errorf("exit status %d, want %d (the number of failed jobs, as GNU parallel counts them)", st, want)
	}
	if !strings.Contains(server.errOut.String(), "nats-server: Filestore [HERD]") {
		t.Errorf("the server did not pass on its warning about the damaged store:\n%s", server.errOut.String())
	}

	// Attached afterwards, the run shows the same, and ends.
	a := startProc(t, dir, nil, "run", "--queue", url, "--attach", regexp.MustCompile(`run (\w+):`).FindStringSubmatch(p.errOut.String())[1], "--joblog", "attach.tsv")
	if ast := a.status(t); ast != st {
		t.Errorf("attach: exit status %d, want %d as the run's; error output:\n%s", ast, st, a.errOut.String())
	}
	if got := len(strings.Fields(strings.ReplaceAll(a.out.String(), "done ", ""))); got != ran {
		t.Errorf("attach showed %d jobs' output, want the %d that ran", got, ran)
	}
	if rows := jobRows(t, filepath.Join(dir, "attach.tsv")); len(rows) != n {
		t.Errorf("attach: job log has %d rows, want %d", len(rows), n)
	}
}

// A run on a queue that no worker serves says so, and goes on once a
// worker comes.
func TestQueueRunWaitsForWorkers(t *testing.T) {
	t.Parallel()
	url := serveQueue(t)
	dir := t.TempDir()
	p := startProc(t, dir, nil, "run", "--queue", url, "--queue-name", "later", "-k", "echo", ":::", "a", "b", "c")
	p.waitOutput(t, `no worker is taking jobs from queue "later" yet; start one with: herd work --queue \S+ --queue-name later`)
	startWorkers(t, url, 1, "--queue-name", "later")
	if st := p.status(t); st != 0 || p.out.String() != "a\nb\nc\n" {
		t.Errorf("status %d, output %q; want 0 and every job's output", st, p.out.String())
	}
}

// --halt now,fail=1 on a queue: the run stops at the first failure with
// its exit status, jobs running are killed, and the rest never start.
func TestQueueHaltNow(t *testing.T) {
	t.Parallel()
	url := serveQueue(t)
	startWorkers(t, url, 1, "-j", "2")
	dir := t.TempDir()
	command := "if [ {} = 3 ]; then exit 7; fi; sleep 2; echo done {}"
	p := startProc(t, dir, nil, append([]string{"run", "--queue", url, "--halt", "now,fail=1", "--joblog", "log.tsv", command, ":::"}, inputs(10)...)...)
	if st := p.status(t); st != 7 {
		t.Fatalf("exit status %d, want 7, the failed job's; error output:\n%s", st, p.errOut.String())
	}
	rows := logRows(t, filepath.Join(dir, "log.tsv"))
	if len(rows) >= 10 || rows[3].Exit != 7 {
		t.Errorf("job log rows %+v: want job 3 failed with 7, and not every job run", rows)
	}
	if strings.Contains(p.out.String(), "done 10") {
		t.Errorf("job 10 ran after the halt:\n%s", p.out.String())
	}
}

// SIGINT kills a run's running jobs on the workers and starts no more, as
// it does locally; herd run exits 130 once their outcomes are in.
func TestQueueRunInterrupted(t *testing.T) {
	t.Parallel()
	url := serveQueue(t)
	startWorkers(t, url, 1, "-j", "2")
	dir := t.TempDir()
	p := startProc(t, dir, nil, append([]string{"run", "--queue", url, "--joblog", "log.tsv", "touch " + dir + "/started.{}; sleep 30; echo done {}", ":::"}, inputs(10)...)...)
	waitFiles(t, dir, "started.1")
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGINT)
	if st := p.status(t); st != 130 {
		t.Fatalf("exit status %d, want 130; error output:\n%s", st, p.errOut.String())
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("herd run took %v to stop the run", d)
	}
	rows := logRows(t, filepath.Join(dir, "log.tsv"))
	if len(rows) == 0 || len(rows) > 2 {
		t.Errorf("%d jobs in the job log; want those running at the signal, killed", len(rows))
	}
	for seq, r := range rows {
		if r.Signal == 0 || strings.Contains(p.out.String(), fmt.Sprintf("done %d\n", seq)) {
			t.Errorf("job %d: %+v; want it killed, not finished", seq, r)
		}
	}
}

// A queue served over TLS: a worker and a submitter that trust its
// certificate run jobs; one that does not is refused with a clear error.
func TestQueueTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key, ca := writeCert(t, dir)
	url := serveQueue(t, "--tls-cert", cert, "--tls-key", key)
	if !strings.HasPrefix(url, "tls://") {
		t.Errorf("herd queue serve with TLS prints %s, want a tls:// URL", url)
	}
	startWorkers(t, url, 1, "--tls-ca", ca)
	p := startProc(t, dir, nil, "run", "--queue", url, "--tls-ca", ca, "-k", "echo", ":::", "a", "b")
	if st := p.status(t); st != 0 || p.out.String() != "a\nb\n" {
		t.Errorf("over TLS: status %d, output %q, error output %q", st, p.out.String(), p.errOut.String())
	}
	p = startProc(t, dir, nil, "queue", "stats", "--queue", url)
	if st := p.status(t); st != statusError || !strings.Contains(p.errOut.String(), "certificate") {
		t.Errorf("without --tls-ca: status %d, error output %q; want 255 and a certificate error", st, p.errOut.String())
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1, its key, and
// the same certificate as the CA to trust, and returns their paths.
func writeCert(t *testing.T, dir string) (cert, key, ca string) {
	t.Helper()
	certPEM, keyPEM := testutil.Cert(t)
	cert, key, ca = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	for path, data := range map[string][]byte{cert: certPEM, ca: certPEM, key: keyPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key, ca
}

// herd queue pause holds a run's jobs back until herd queue resume, with a
// worker waiting; stats says so.
func TestQueuePauseResume(t *testing.T) {
	t.Parallel()
	url := serveQueue(t)
	dir := t.TempDir()
	herd := queueCLI(t, dir, url)
	if out, st := herd("queue", "pause", "default"); st != 0 || !strings.Contains(out, "default: paused") {
		t.Fatalf("queue pause: status %d:\n%s", st, out)
	}
	startWorkers(t, url, 1, "--queue-name", "default,other")
	run := startProc(t, dir, nil, "run", "--queue", url, "echo {} > "+dir+"/{}.done", ":::", "a", "b") // the worker's folder is its own
	run.waitOutput(t, "all 2 jobs are on the queue")
	// Two runs on another queue, one after the other: the worker has
	// looked at its queues since the paused one's jobs were there.
	for range 2 {
		other := startProc(t, dir, nil, "run", "--queue", url, "--queue-name", "other", "true", ":::", "x")
		if st := other.status(t); st != 0 {
			t.Fatalf("a run on a queue not paused: status %d:\n%s", st, other.errOut.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a.done")); err == nil {
		t.Fatal("a job of a paused queue ran")
	}
	if out, st := herd("queue", "stats", "--interval", "0"); st != 0 || !regexp.MustCompile(`default \(paused\)\s+default\s+2\s`).MatchString(out) {
		t.Errorf("queue stats while paused: status %d:\n%s", st, out)
	}
	if out, st := herd("queue", "resume", "default"); st != 0 || !strings.Contains(out, "default: resumed") {
		t.Fatalf("queue resume: status %d:\n%s", st, out)
	}
	if st := run.status(t); st != 0 {
		t.Errorf("the run after resume: status %d: %s", st, run.errOut.String())
	}
	waitFiles(t, dir, "a.done", "b.done")
	if out, st := herd("queue", "pause", "bad.name"); st != statusError || !strings.Contains(out, "bad.name") {
		t.Errorf("queue pause bad.name: status %d:\n%s", st, out)
	}
}

// herd queue cancel, from another process, stops a running shell job and
// what it started, and herd run reports the job failed.
func TestQueueCancelRunningJob(t *testing.T) {
	t.Parallel()
	url := serveQueue(t)
	startWorkers(t, url, 1)
	dir := t.TempDir()
	run := startProc(t, dir, nil, "run", "--queue", url, "--joblog", filepath.Join(dir, "jobs.tsv"),
		"sleep 300 & echo $! > "+dir+"/child; echo $$ > "+dir+"/shell; wait; : {}", ":::", "a") // {}: the input is not appended to wait
	id := run.waitOutput(t, `run (\S+): the jobs go to the queue`) + ".1" // job 1 of the run
	var pids []int
	for _, f := range []string{"child", "shell"} {
		// The file may be there before what the shell writes in it.
		testutil.Eventually(t, "the job to write its "+f+"'s pid", func() bool {
			b, _ := os.ReadFile(filepath.Join(dir, f))
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err == nil {
				pids = append(pids, pid)
			}
			return err == nil
		})
	}

	cancel := startProc(t, dir, nil, "queue", "cancel", id, "--queue", url)
	if st := cancel.status(t); st != 0 || !strings.Contains(cancel.out.String(), id+": cancelled") {
		t.Fatalf("queue cancel: status %d: %s%s", st, cancel.out.String(), cancel.errOut.String())
	}
	for _, pid := range pids {
		testutil.Eventually(t, fmt.Sprintf("process %d to end after the cancel", pid), func() bool {
			return syscall.Kill(pid, 0) != nil
		})
	}
	if st := run.status(t); st != 1 || !strings.Contains(run.errOut.String(), "cancelled") {
		t.Errorf("herd run: status %d, error output %q; want 1 and the job cancelled", st, run.errOut.String())
	}
	again := startProc(t, dir, nil, "queue", "cancel", id, "--queue", url)
	if st := again.status(t); st != statusError || !strings.Contains(again.errOut.String(), "has finished") {
		t.Errorf("queue cancel of a cancelled job: status %d: %s", st, again.errOut.String())
	}
}

// herd queue cron runs a command on a schedule on the workers, and its
// schedules are listed and removed.
func TestQueueCron(t *testing.T) {
	t.Parallel()
	url := serveQueue(t)
	dir := t.TempDir()
	herd := queueCLI(t, dir, url)
	ticks := filepath.Join(dir, "ticks")
	if out, st := herd("queue", "cron", "add", "tick", "@every 1s", "echo tick >> "+ticks); st != 0 || !strings.Contains(out, "tick: added; first run at") {
		t.Fatalf("cron add: status %d:\n%s", st, out)
	}
	if out, st := herd("queue", "cron", "add", "tick", "@every 1s", "true"); st != statusError || !strings.Contains(out, "exists") {
		t.Errorf("cron add of a taken name: status %d:\n%s", st, out)
	}
	if out, st := herd("queue", "cron", "add", "bad", "61 * * * *", "true"); st != statusError || !strings.Contains(out, "61") {
		t.Errorf("cron add with a bad spec: status %d:\n%s", st, out)
	}
	out, st := herd("queue", "cron", "ls", "--json")
	var scheds []queue.Schedule
	if err := json.Unmarshal([]byte(out), &scheds); st != 0 || err != nil || len(scheds) != 1 || scheds[0].Spec != "@every 1s" {
		t.Fatalf("cron ls --json: status %d: %s (%v)", st, out, err)
	}
	if out, st := herd("queue", "cron", "ls"); st != 0 || !strings.Contains(out, "echo tick >> "+ticks) {
		t.Errorf("cron ls: status %d:\n%s", st, out)
	}
	startWorkers(t, url, 2)
	testutil.Eventually(t, "the schedule to run 3 times", func() bool {
		b, _ := os.ReadFile(ticks)
		return strings.Count(string(b), "tick\n") >= 3
	})
	if out, st := herd("queue", "cron", "rm", "tick"); st != 0 || !strings.Contains(out, "tick: removed") {
		t.Errorf("cron rm: status %d:\n%s", st, out)
	}
	if out, st := herd("queue", "cron", "ls", "--json"); st != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("cron ls after rm: status %d:\n%s", st, out)
	}
	// Proof that the workers go on scheduling without it: another schedule
	// runs twice, once the queue has run what was enqueued before. The
	// workers see schedules in the order they change, so once the second
	// one runs they have seen the rm too.
	tocks := filepath.Join(dir, "tocks")
	tockedTwice := func() {
		if out, st := herd("queue", "cron", "add", "tock", "@every 1s", "echo tock >> "+tocks); st != 0 {
			t.Fatalf("cron add: status %d:\n%s", st, out)
		}
		testutil.Eventually(t, "the second schedule to run twice", func() bool {
			b, _ := os.ReadFile(tocks)
			return strings.Count(string(b), "tock\n") >= 2
		})
		if out, st := herd("queue", "cron", "rm", "tock"); st != 0 {
			t.Fatalf("cron rm: status %d:\n%s", st, out)
		}
		os.Remove(tocks)
	}
	tockedTwice()
	testutil.Eventually(t, "the queue to run what it holds", func() bool {
		out, st := herd("queue", "stats", "--json")
		var stats struct{ Queues []queue.QueueStats }
		if st != 0 || json.Unmarshal([]byte(out), &stats) != nil {
			t.Fatalf("queue stats --json: status %d:\n%s", st, out)
		}
		for _, q := range stats.Queues {
			if q.Waiting > 0 || q.InFlight > 0 {
				return false
			}
		}
		return true
	})
	b1, _ := os.ReadFile(ticks)
	tockedTwice()
	if b2, _ := os.ReadFile(ticks); len(b2) != len(b1) {
		t.Errorf("the schedule still runs after cron rm")
	}
}

// herd queue serve --http, herd queue ui and herd work --http serve the
// dashboard, its JSON and the metrics of the jobs run; an address other
// machines reach is refused without credentials.
func TestQueueDashboardCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	serve := startProc(t, dir, nil, "queue", "serve", "--listen", "127.0.0.1:0", "--dir", t.TempDir(), "--http", "127.0.0.1:0")
	dash := serve.waitOutput(t, `dashboard at (\S+)`)
	url := regexp.MustCompile(`serving (\S+)`).FindStringSubmatch(waitStdout(t, serve, `serving \S+`))[1]
	ui := startProc(t, dir, nil, "queue", "ui", "--queue", url, "--http", "127.0.0.1:0", "--read-only")
	uiURL := ui.waitOutput(t, `dashboard at (\S+)`)
	work := startProc(t, dir, nil, "work", "--queue", url, "-j", "2", "--http", "127.0.0.1:0")
	metrics := work.waitOutput(t, `metrics at (\S+)`)

	run := startProc(t, dir, nil, "run", "--queue", url, "echo", ":::", "a", "b", "c")
	if st := run.status(t); st != 0 {
		t.Fatalf("herd run --queue = %d: %s", st, run.errOut.String())
	}
	fetch := func(u string) string {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d: %s", u, resp.StatusCode, b)
		}
		return string(b)
	}
	for _, base := range []string{dash, uiURL} {
		var runs []struct {
			Command    string `json:"command"`
			Jobs, Done int
		}
		if err := json.Unmarshal([]byte(fetch(base+"/api/runs")), &runs); err != nil || len(runs) != 1 || runs[0].Done != 3 || runs[0].Jobs != 3 {
			t.Errorf("GET %s/api/runs = %+v, %v; want one run of 3 jobs done", base, runs, err)
		}
	}
	if page := fetch(uiURL + "/jobs?state=succeeded"); strings.Contains(page, `method="post"`) {
		t.Errorf("herd queue ui --read-only shows an action:\n%s", page)
	}
	if m := fetch(metrics + "/metrics"); !strings.Contains(m, `herd_queue_jobs_finished_total{outcome="succeeded",queue="default"} 3`) {
		t.Errorf("herd work's /metrics has not the 3 jobs it ran:\n%s", m)
	}
	if fetch(metrics+"/readyz") != "ok\n" {
		t.Error("herd work's /readyz is not ok")
	}

	cli := queueCLI(t, dir, url)
	out, st := cli("queue", "workers", "--json")
	var ws []queue.WorkerInfo
	if err := json.Unmarshal([]byte(out), &ws); st != 0 || err != nil || len(ws) != 1 || ws[0].Concurrency != 2 {
		t.Fatalf("herd queue workers --json = %d, %v:\n%s\nwant the one worker, of 2 slots", st, err, out)
	}
	if out, st := cli("queue", "drain", ws[0].ID); st != 0 || !strings.Contains(out, "asked") {
		t.Errorf("herd queue drain %s = %d:\n%s", ws[0].ID, st, out)
	}
	testutil.Eventually(t, "herd queue workers to say the worker drains", func() bool {
		out, _ = cli("queue", "workers")
		return strings.Contains(out, "(draining)")
	})

	open := startProc(t, dir, nil, "queue", "ui", "--queue", url, "--http", "0.0.0.0:0")
	if st := open.status(t); st == 0 || !strings.Contains(open.errOut.String(), "credentials") {
		t.Errorf("herd queue ui --http 0.0.0.0:0 = %d: %s; want refused, asking for credentials", st, open.errOut.String())
	}
}

// herd queue limit sets, lists and clears a queue's limits; two workers
// of 4 jobs each keep to them for a run whose jobs carry keys (--key);
// herd queue stats shows them.
func TestQueueLimit(t *testing.T) {
	t.Parallel()
	url := serveQueue(t)
	dir := t.TempDir()
	herd := queueCLI(t, dir, url)
	if out, st := herd("queue", "limit"); st != 0 || !strings.Contains(out, "no queue is limited") {
		t.Errorf("queue limit with none: status %d:\n%s", st, out)
	}
	if out, st := herd("queue", "limit", "pay", "--concurrency", "2", "--key-concurrency", "1"); st != 0 || !strings.Contains(out, "queue pay: at most 2 at once, at most 1 at once per key") {
		t.Fatalf("queue limit pay: status %d:\n%s", st, out)
	}
	if out, st := herd("queue", "limit", "mail", "--rate", "120/m", "--burst", "3"); st != 0 || !strings.Contains(out, "queue mail: at most 2/s (burst 3)") {
		t.Fatalf("queue limit mail: status %d:\n%s", st, out)
	}
	// A flag not given keeps its value.
	if out, st := herd("queue", "limit", "mail", "--concurrency", "9"); st != 0 || !strings.Contains(out, "queue mail: at most 9 at once, at most 2/s (burst 3)") {
		t.Errorf("queue limit mail --concurrency 9: status %d:\n%s", st, out)
	}
	out, st := herd("queue", "limit", "--json")
	var all map[string]queue.Limits
	if err := json.Unmarshal([]byte(out), &all); st != 0 || err != nil ||
		all["pay"] != (queue.Limits{Concurrency: 2, KeyConcurrency: 1}) || all["mail"] != (queue.Limits{Concurrency: 9, Rate: 2, Burst: 3}) {
		t.Errorf("queue limit --json: status %d, %v:\n%s", st, err, out)
	}
	for _, bad := range []struct {
		args []string
		says string
	}{
		{[]string{"pay", "--concurrency", "-1"}, "--concurrency -1: want 0 (no limit) or more"},
		{[]string{"pay", "--rate", "fast"}, `--rate: rate "fast"`},
		{[]string{"pay", "--burst", "4"}, "--burst goes with a --rate"},
		{[]string{"pay", "--clear", "--concurrency", "1"}, "--clear removes every limit: give it alone"},
		{[]string{"--clear"}, "--clear: name the queue"},
		{[]string{"bad.name", "--concurrency", "1"}, `queue "bad.name"`},
	} {
		if out, st := herd(append([]string{"queue", "limit"}, bad.args...)...); st != statusError || !strings.Contains(out, bad.says) {
			t.Errorf("queue limit %v: status %d, want %d and %q:\n%s", bad.args, st, statusError, bad.says, out)
		}
	}
	if p := startProc(t, dir, nil, "run", "--key", "{1}", "echo", ":::", "a"); p.status(t) != statusError || !strings.Contains(p.errOut.String(), "--key needs --queue URL") {
		t.Errorf("run --key without --queue: %s", p.errOut.String())
	}

	// Jobs note when they start and end: never more than 2 at once, nor 2
	// of one key (the first column), though the workers could run 8.
	startWorkers(t, url, 2, "-j", "4", "--queue-name", "pay")
	log := filepath.Join(dir, "log")
	var inputs []string
	for _, key := range []string{"k1", "k2", "k3"} {
		for i := range 3 {
			inputs = append(inputs, key+" "+strconv.Itoa(i))
		}
	}
	run := startProc(t, dir, nil, append([]string{"run", "--queue", url, "--queue-name", "pay", "--key", "{1}", "--colsep", " ",
		"echo start {1} $(date +%s%N) >> " + log + "; sleep 0.5; echo end {1} $(date +%s%N) >> " + log, ":::"}, inputs...)...)
	if st := run.status(t); st != 0 {
		t.Fatalf("run --key {1}: status %d:\n%s", st, run.errOut.String())
	}
	type event struct {
		at    int64
		key   string
		start bool
	}
	var events []event
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		at, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if len(f) != 3 || err != nil {
			t.Fatalf("log line %q", line)
		}
		events = append(events, event{at, f[1], f[0] == "start"})
	}
	slices.SortStableFunc(events, func(a, b event) int { // an end before a start at the same moment
		return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(boolValue(a.start), boolValue(b.start)))
	})
	running, peak, perKey := 0, 0, map[string]int{}
	for _, e := range events {
		d := map[bool]int{true: 1, false: -1}[e.start]
		running += d
		perKey[e.key] += d
		peak = max(peak, running)
		if perKey[e.key] > 1 {
			t.Errorf("2 jobs of key %s ran at once", e.key)
		}
	}
	if len(events) != 18 || peak != 2 {
		t.Errorf("%d events, at most %d jobs at once; want 18, and 2 at once (the limit)", len(events), peak)
	}
	// The slots held come with the workers' heartbeats, every 5 s: the
	// figures catch up with the run's end within one.
	testutil.Eventually(t, "queue stats to show pay's limits with no job running or held", func() bool {
		out, st = herd("queue", "stats", "--interval", "0")
		return st == 0 && strings.Contains(out, "limits of queue pay: at most 2 at once, at most 1 at once per key; 0 running; 0 held by workers for a slot")
	})
	if out, st := herd("queue", "limit", "pay", "--clear"); st != 0 || !strings.Contains(out, "queue pay: no limits") {
		t.Errorf("queue limit pay --clear: status %d:\n%s", st, out)
	}
	if out, st := herd("queue", "limit"); st != 0 || strings.Contains(out, "pay") || !strings.Contains(out, "mail") {
		t.Errorf("queue limit after clearing pay: status %d:\n%s", st, out)
	}
}

func boolValue(b bool) int {
	if b {
		return 1
	}
	return 0
}
