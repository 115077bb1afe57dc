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
)

// A run of -S whose herd run and keeper were both killed outright: an
// attach without hosts says how to go on, and keeps the run; with -S, the
// hosts start again and every job is shown once.
func TestRunKeptKeeperKilled(t *testing.T) {
	t.Parallel()
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
