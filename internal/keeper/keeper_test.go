package keeper

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goherd/herd/internal/testutil"
	"github.com/goherd/herd/queue"
)

// TestMain runs the test binary as a keeper when Start starts it so: the
// keeper of these tests has no hosts, and herd is the test binary.
func TestMain(m *testing.M) {
	testutil.QuickExit()
	if len(os.Args) == 3 && os.Args[1] == "run-keeper" {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		if err := Keep(os.Args[2], sigs, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

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
	ForgetOld(runs)
	for name, want := range map[string]bool{"old": false, "recent": true, "old-but-kept": true} {
		if _, err := os.Stat(filepath.Join(runs, name)); (err == nil) != want {
			t.Errorf("run folder %s kept: %v, want %v", name, err == nil, want)
		}
	}
}

// startTestKeeper starts a keeper of run r1 in a folder of its own, with
// parent as herd run's process id, and returns it.
func startTestKeeper(t *testing.T, parent int) *Keeper {
	t.Helper()
	k, err := Folder(t.TempDir(), "r1", false)
	if err != nil {
		t.Fatal(err)
	}
	started, err := Start(k.Dir, Config{Run: "r1", Parent: parent, Herd: os.Args[0], Lease: time.Second, QueueName: "default"}, os.Args[0], "run-keeper")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(started.Stop)
	return started
}

// A keeper serves the run's queue on loopback, with a token, says where
// in the run's folder, and takes all of it away when stopped.
func TestKeeperServesTheRunsQueue(t *testing.T) {
	k := startTestKeeper(t, os.Getpid())
	url, token := k.URL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") || token == "" || !k.Alive() {
		t.Fatalf("URL() = %q, %q; Alive() = %v; want a loopback URL, a token, and a keeper alive", url, token, k.Alive())
	}
	c, err := queue.Open(t.Context(), queue.Config{URL: url, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(t.Context()); err != nil {
		t.Errorf("Ping the run's queue: %v", err)
	}
	c.Close()
	if _, err := queue.Open(t.Context(), queue.Config{URL: url, Token: "wrong"}); err == nil {
		t.Errorf("the run's queue let a client in with a wrong token")
	}
	k.Stop()
	if u, _ := k.URL(); u != "" || k.Alive() {
		t.Errorf("after Stop: URL() = %q, Alive() = %v; want neither", u, k.Alive())
	}
	for _, f := range []string{"url", "token", "pid"} {
		if _, err := os.Stat(filepath.Join(k.Dir, f)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after Stop, the run's folder still has %s (%v)", f, err)
		}
	}
}

// Once herd run is gone and nobody attached, a keeper whose run never
// began (no state on its queue) stops by itself and its folder goes.
func TestKeeperOfARunNeverBegunGoes(t *testing.T) {
	parent := exec.Command("sleep", "300") // herd run, for the keeper
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { parent.Process.Kill(); parent.Wait() })
	k := startTestKeeper(t, parent.Process.Pid)
	parent.Process.Kill()
	parent.Wait()
	testutil.Eventually(t, "the keeper to stop and its folder to go", func() bool {
		_, err := os.Stat(k.Dir)
		return !k.Alive() && errors.Is(err, fs.ErrNotExist)
	})
}

// Follow relays the keeper's log from an offset, a line at a time, and
// says once that every host is lost.
func TestFollow(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	os.WriteFile(log, []byte("before\n"), 0o600)
	k := &Keeper{Dir: dir}
	ctx, cancel := context.WithCancel(t.Context())
	lines := make(chan string, 10)
	lost := make(chan struct{}, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		k.Follow(ctx, int64(len("before\n")), func(s string) { lines <- s }, func() { lost <- struct{}{} })
	}()
	f, _ := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("host h1 is lost\nhost ")
	f.WriteString("h2 is lost\n")
	f.Close()
	for _, want := range []string{"host h1 is lost", "host h2 is lost"} {
		if got := <-lines; got != want {
			t.Errorf("Follow said %q, want %q", got, want)
		}
	}
	os.WriteFile(filepath.Join(dir, "lost"), nil, 0o600)
	<-lost
	cancel()
	<-done
	if len(lost) != 0 || len(lines) != 0 {
		t.Errorf("Follow said more: %d lines, %d lost", len(lines), len(lost))
	}
}

// Folder makes a new run's folder, and refuses to attach to a run that is
// not there.
func TestFolder(t *testing.T) {
	runs := t.TempDir()
	k, err := Folder(runs, "r2", false)
	if err != nil || k.Dir != filepath.Join(runs, "r2") {
		t.Fatalf("Folder(new) = %+v, %v", k, err)
	}
	if _, err := Folder(runs, "nosuch", true); err == nil || !strings.Contains(err.Error(), "no such run") {
		t.Errorf("Folder(attach to nosuch) = %v, want no such run", err)
	}
	os.MkdirAll(filepath.Join(k.Dir, "queue"), 0o700)
	if _, err := Folder(runs, "r2", true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(k.Dir, "attached")); string(b) != strconv.Itoa(os.Getpid()) || !attachedAlive(k.Dir) {
		t.Errorf("attached = %q, want this process (%d)", b, os.Getpid())
	}
}

// A keeper that stops as herd run --attach comes to show its run (it saw
// the run done first) leaves the run's queue in its folder, and Open
// finds it there once the keeper has exited.
func TestOpenAsTheKeeperStops(t *testing.T) {
	k, err := Folder(t.TempDir(), "r1", false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := queue.Open(t.Context(), queue.Config{Dir: filepath.Join(k.Dir, "queue")})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	keeper := exec.Command("sleep", "1") // the keeper, about to exit
	if err := keeper.Start(); err != nil {
		t.Fatal(err)
	}
	exitedToo := make(chan struct{})
	go func() { keeper.Wait(); close(exitedToo) }()
	t.Cleanup(func() { keeper.Process.Kill(); <-exitedToo })
	for name, value := range map[string]string{"pid": strconv.Itoa(keeper.Process.Pid), "url": "nats://127.0.0.1:1", "token": "t"} {
		if err := os.WriteFile(filepath.Join(k.Dir, name), []byte(value), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), testutil.Backstop)
	defer cancel()
	rc, err := k.Open("r1")(ctx, io.Discard)
	if err != nil {
		t.Fatalf("Open as the keeper stops: %v; want the run's queue in its folder", err)
	}
	rc.Close()
	select {
	case <-exitedToo:
	default:
		t.Error("Open used the run's folder while the keeper still ran")
	}
}
