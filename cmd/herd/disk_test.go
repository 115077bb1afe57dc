package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/goherd/herd/internal/testutil"
)

// mountDisk mounts a tmpfs of size bytes for the test, and unmounts it at
// the end: a disk that really fills. Mounting takes root, as CI has, which
// requires it (HERD_TMPFS=required): there, without it the test fails;
// elsewhere it is skipped, saying why.
func mountDisk(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		testutil.Need(t, "HERD_TMPFS", fmt.Sprintf("mounting a tmpfs for a disk that fills: %v (the test needs root)", err))
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting the test's tmpfs: %v", err)
		}
	})
	return dir
}

// freeSpace is what the disk of dir has free.
func freeSpace(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// A disk that really fills, another program taking most of it while the
// queue serves: the server never meets a disk with no space left (which
// would stop it storing in a stream until restarted). Writes are refused
// while it keeps a reserve, herd run leaves saying the queue is full, the
// full queue can be looked at, and once room is made every job that was
// on the queue runs, with nothing lost.
func TestQueueDiskFull(t *testing.T) {
	t.Parallel()
	// 8 MiB, of which the queue keeps 1 MiB in reserve and refuses writes
	// with 2 MiB left.
	disk := mountDisk(t, 8<<20)
	listen := fmt.Sprintf("127.0.0.1:%d", testutil.FreePorts(t, 1)[0])
	url := "nats://" + listen
	server := startProc(t, t.TempDir(), nil, "queue", "serve", "--listen", listen, "--dir", filepath.Join(disk, "queue"))
	waitStdout(t, server, "serving")
	// The other program leaves 2.5 MiB: less than the server's own limit,
	// three quarters of what was free when it started. When its file goes,
	// that is room enough to go on.
	filler := filepath.Join(disk, "filler")
	if err := os.WriteFile(filler, make([]byte, freeSpace(t, disk)-5<<19), 0o600); err != nil {
		t.Fatal(err)
	}
	ws := startWorkers(t, url, 1, "-j", "4")
	dir := t.TempDir()
	pad := strings.Repeat("x", 1500)
	p := startProcIn(t, dir, nil, strings.NewReader(seq(3000)), "run", "--queue", url, "echo {} >> "+dir+"/ran; : "+pad)
	if st := p.status(t); st != statusError || !strings.Contains(p.errOut.String(), "the queue is full") {
		t.Fatalf("herd run: exit status %d, want %d and a word that the queue is full:\n%s", st, statusError, p.errOut.String())
	}
	m := regexp.MustCompile(`run (\w+): the queue is full: .* the \d+ jobs on it go on .*make room`).FindStringSubmatch(p.errOut.String())
	if m == nil {
		t.Fatalf("herd run did not say that the jobs on the queue go on, and what to do:\n%s", p.errOut.String())
	}
	if n := strings.Count(p.errOut.String(), "\n"); n > 3 {
		t.Errorf("herd run wrote %d lines; want the run's id and a line or two on the full queue:\n%s", n, p.errOut.String())
	}
	id := m[1]

	herd := queueCLI(t, dir, url)
	if out, st := herd("queue", "stats", "--interval", "0"); st != 0 {
		t.Errorf("queue stats on the full queue: status %d:\n%s", st, out)
	}
	if out, st := herd("queue", "ls", "--limit", "3"); st != 0 {
		t.Errorf("queue ls on the full queue: status %d:\n%s", st, out)
	}

	// Room is made: the other program's file goes.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	a := startProc(t, dir, nil, "run", "--queue", url, "--attach", id, "--joblog", "log.tsv")
	if st := a.status(t); st != 0 {
		t.Errorf("herd run --attach once there is room: exit status %d:\n%s", st, a.errOut.String())
	}
	runs := timesRun(t, filepath.Join(dir, "ran"))
	// The run's jobs are those it stored before the disk filled: each ran.
	n := len(logRows(t, filepath.Join(dir, "log.tsv")))
	if n == 0 || n == 3000 || len(runs) != n {
		t.Errorf("%d jobs ran, and the run has %d; want every job of the run run, and the run cut short by the full disk", len(runs), n)
	}
	for job, k := range runs {
		if k > 2 {
			t.Errorf("job %s ran %d times", job, k)
		}
	}
	for _, bad := range []string{"no space left", "ritical write error"} {
		if strings.Contains(server.errOut.String(), bad) {
			t.Errorf("the server met the disk's end (%q):\n%s", bad, server.errOut.String())
		}
	}
	if !strings.Contains(server.errOut.String(), "nearly full") {
		t.Errorf("the server did not say its disk is nearly full:\n%s", server.errOut.String())
	}
	if k := strings.Count(ws[0].errOut.String(), "cannot be stored"); k > 20 {
		t.Errorf("the worker said %d times that outcomes cannot be stored, want a few:\n%s", k, ws[0].errOut.String())
	}
}
