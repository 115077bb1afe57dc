package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// A three-stage pipeline from the shell, on two herd work processes:
// --detach stores a run and prints its id, --after-each pairs the jobs of
// two runs, --after waits for whole runs; a failed job stops what waits
// for it, which is reported as failed, and runs once it is retried.
func TestQueueFlowsFromTheShell(t *testing.T) {
	t.Parallel()
	url := serveQueue(t)
	startWorkers(t, url, 2, "-j", "3")
	dir := t.TempDir()
	herd := func(args ...string) (string, string, int) {
		t.Helper()
		p := startProc(t, dir, nil, args...)
		st := p.status(t)
		return p.out.String(), p.errOut.String(), st
	}
	runID := regexp.MustCompile(`^[0-9a-f]{12}\n$`)

	// Stage 1 writes a file per input; stage 2 reads the file of its input
	// only; stage 3 reads them all. (The workers share this machine's
	// files, each in a folder of its own.)
	frames, stderr, st := herd("run", "--queue", url, "--detach", "sleep 0.$(( {} % 3 )); echo frame {} > "+dir+"/f{}", ":::", "1", "2", "3", "4", "5", "6")
	if st != 0 || !runID.MatchString(frames) {
		t.Fatalf("--detach: exit %d, output %q (want the run's id alone):\n%s", st, frames, stderr)
	}
	frames = strings.TrimSpace(frames)
	shout, _, st := herd("run", "--queue", url, "--detach", "--after-each", frames, "cd "+dir+"; tr a-z A-Z < f{} > s{}", ":::", "1", "2", "3", "4", "5", "6")
	if st != 0 {
		t.Fatalf("--after-each: exit %d", st)
	}
	shout = strings.TrimSpace(shout)
	out, stderr, st := herd("run", "--queue", url, "--after", frames+","+shout, "--joblog", "log.tsv", "cd "+dir+"; cat s1 s2 s3 s4 s5 s6 > {}; echo {} done", ":::", "video")
	if st != 0 || out != "video done\n" {
		t.Fatalf("--after: exit %d, output %q:\n%s", st, out, stderr)
	}
	b, err := os.ReadFile(filepath.Join(dir, "video"))
	if want := "FRAME 1\nFRAME 2\nFRAME 3\nFRAME 4\nFRAME 5\nFRAME 6\n"; err != nil || string(b) != want {
		t.Errorf("the last stage read %q, %v; want every file of the stage before, each done", b, err)
	}

	// A job that fails: the job waiting for it does not run, and says why.
	failing, _, _ := herd("run", "--queue", url, "--detach", "test -e "+dir+"/ok{}", ":::", "1", "2")
	failing = strings.TrimSpace(failing)
	out, stderr, st = herd("run", "--queue", url, "--after-each", failing, "--joblog", "each.tsv", "echo next {}", ":::", "1", "2")
	if st != 2 || out != "" {
		t.Errorf("--after-each of failed jobs: exit %d, output %q; want 2 (two jobs not run), nothing run", st, out)
	}
	if want := "job 1: not run: parent " + failing + ".1 is dead: attempt 1: exit status 1"; !strings.Contains(stderr, want) {
		t.Errorf("the job not run is reported as:\n%s\nwant a line saying %q", stderr, want)
	}
	if rows := jobRows(t, filepath.Join(dir, "each.tsv")); len(rows) != 2 || !strings.HasPrefix(rows[0], "1\t-1\t0\techo next 1") {
		t.Errorf("job log of the jobs not run: %q; want a failed row for each", rows)
	}
	waiting, _, _ := herd("run", "--queue", url, "--detach", "--after", failing, "echo {} ran after the retry", ":::", "x")
	waiting = strings.TrimSpace(waiting)
	os.WriteFile(filepath.Join(dir, "ok1"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "ok2"), nil, 0o644)
	cli := queueCLI(t, dir, url)
	for _, id := range []string{failing + ".1", failing + ".2"} {
		if out, st := cli("queue", "retry", id); st != 0 {
			t.Fatalf("herd queue retry %s: exit %d:\n%s", id, st, out)
		}
	}
	out, stderr, st = herd("run", "--queue", url, "--attach", waiting)
	if st != 0 || out != "x ran after the retry\n" {
		t.Errorf("--attach to a run waiting for retried jobs: exit %d, output %q:\n%s", st, out, stderr)
	}

	// Refused before anything is stored.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--after-each", frames, "echo", ":::", "1", "2"}, "that run has 6 jobs and this one 2"},
		{[]string{"--after", "nosuchrun", "echo", ":::", "1"}, "--after nosuchrun: the queue has no such run"},
	} {
		_, stderr, st := herd(slices.Concat([]string{"run", "--queue", url}, tc.args)...)
		if st != 255 || !strings.Contains(stderr, tc.want) {
			t.Errorf("herd run %q: exit %d, said:\n%s\nwant 255 and %q", tc.args, st, stderr, tc.want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--detach", "echo", ":::", "1"}, "--detach needs --queue URL or -S HOSTS"},
		{[]string{"-S", "1/:", "--queue", url, "--detach", "echo", ":::", "1"}, "--detach with -S and --queue: the hosts' workers stop when herd run ends"},
		{[]string{"-S", "1/:", "--after", frames, "echo", ":::", "1"}, "--after and --after-each need --queue URL"},
	} {
		if _, stderr, st := herd(append([]string{"run"}, tc.args...)...); st != 255 || !strings.Contains(stderr, tc.want) {
			t.Errorf("herd run %q: exit %d, said:\n%s\nwant 255 and %q", tc.args, st, stderr, tc.want)
		}
	}

	// With -S and --queue, the hosts' workers run a run that waits for
	// others like any.
	out, stderr, st = herd("run", "-k", "-S", "1/:", "--queue", url, "--after-each", frames, "cat "+dir+"/s{}", ":::", "1", "2", "3", "4", "5", "6") // -k: in order, whichever worker runs each
	if want := "FRAME 1\nFRAME 2\nFRAME 3\nFRAME 4\nFRAME 5\nFRAME 6\n"; st != 0 || out != want {
		t.Errorf("-S --queue --after-each: exit %d, output %q:\n%s\nwant %q", st, out, stderr, want)
	}
}

// herd run -S --detach without --queue puts the run on its keeper's queue,
// prints its id and returns; the keeper and its hosts see it done, and
// herd run --attach ID shows every job once.
func TestRunKeptDetach(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := t.TempDir()
	env := []string{"XDG_DATA_HOME=" + data}
	p := startProc(t, dir, env, append([]string{"run", "-S", "1/:", "--detach", "sleep 0.2; echo done {}", ":::"}, inputs(6)...)...)
	if st := p.status(t); st != 0 || !regexp.MustCompile(`^\w+\n$`).MatchString(p.out.String()) {
		t.Fatalf("-S --detach: exit %d, output %q (want the run's id alone):\n%s", st, p.out.String(), p.errOut.String())
	}
	id := strings.TrimSpace(p.out.String())
	a := startProc(t, dir, env, "run", "--attach", id)
	if st := a.status(t); st != 0 {
		t.Fatalf("attach: exit status %d, want 0; error output:\n%s", st, a.errOut.String())
	}
	assertEachOnce(t, a.out.String(), 6)
	if _, err := os.Stat(filepath.Join(data, "herd", "runs", id)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the run's folder after the run: %v, want it gone", err)
	}
}
