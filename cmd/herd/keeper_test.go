package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The folders of runs whose keeper stopped over a week ago go when a new
// run starts; those of runs kept or recent stay.
func TestForgetOldRuns(t *testing.T) {
	runs := t.TempDir()
	old := time.Now().Add(-8 * 24 * time.Hour)
	mk := func(name string, at time.Time, pid int) {
		dir := filepath.Join(runs, name)
		if err := os.MkdirAll(filepath.Join(dir, "queue"), 0o700); err != nil {
			t.Fatal(err)
		}
		if pid != 0 {
			os.WriteFile(filepath.Join(dir, "pid"), []byte(strconv.Itoa(pid)), 0o600)
		}
		os.WriteFile(filepath.Join(dir, "log"), nil, 0o600)
		for _, p := range []string{filepath.Join(dir, "log"), filepath.Join(dir, "pid"), dir} {
			os.Chtimes(p, at, at)
		}
	}
	mk("old", old, 0)
	mk("recent", time.Now(), 0)
	mk("old-but-kept", old, os.Getpid()) // its keeper runs
	forgetOldRuns(runs)
	for name, want := range map[string]bool{"old": false, "recent": true, "old-but-kept": true} {
		if _, err := os.Stat(filepath.Join(runs, name)); (err == nil) != want {
			t.Errorf("run folder %s kept: %v, want %v", name, err == nil, want)
		}
	}
}

// A run of -S whose herd run and keeper were both killed outright: an
// attach without hosts says how to go on, and keeps the run; with -S, the
// hosts start again and every job is shown once.
func TestRunKeptKeeperKilled(t *testing.T) {
	dir := t.TempDir()
	data := t.TempDir()
	env := []string{"XDG_DATA_HOME=" + data}
	p := startProc(t, dir, env, append([]string{"run", "-S", "1/:", "sleep 0.5; echo done {}", ":::"}, inputs(6)...)...)
	id := p.waitOutput(t, `run (\w+): the jobs go to the queue`)
	waitDone(t, p, 1)
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.status(t)
	runDir := filepath.Join(data, "herd", "runs", id)
	b, err := os.ReadFile(filepath.Join(runDir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	keeper, _ := strconv.Atoi(string(b))
	syscall.Kill(keeper, syscall.SIGKILL) // its worker for ":" stops with it

	a := startProc(t, dir, env, "run", "--attach", id)
	if st := a.status(t); st == 0 || !strings.Contains(a.errOut.String(), "-S HOSTS --attach "+id) {
		t.Fatalf("attach without hosts: status %d, error output:\n%s\nwant a failure saying how to go on", st, a.errOut.String())
	}
	a = startProc(t, dir, env, "run", "-S", "1/:", "--attach", id)
	if st := a.status(t); st != 0 {
		t.Fatalf("attach with -S: status %d; error output:\n%s", st, a.errOut.String())
	}
	assertEachOnce(t, a.out.String(), 6) // the run, shown whole
	if _, err := os.Stat(runDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the run's folder after the run: %v, want it gone", err)
	}
}
