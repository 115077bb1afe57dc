package main

import (
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
	if _, stderr, st := herd("run", "--detach", "echo", ":::", "1"); st != 255 || !strings.Contains(stderr, "need --queue URL") {
		t.Errorf("--detach without --queue: exit %d:\n%s", st, stderr)
	}
}
