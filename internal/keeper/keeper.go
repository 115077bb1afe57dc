// Package keeper keeps a run of herd run -S going when herd run is gone.
//
// A run of herd run -S without --queue has a keeper: a process of its own
// session, which herd run starts, that serves the run's queue on loopback
// (its data in the run's folder) and holds the ssh sessions that run herd
// work on the hosts. So the run outlives herd run and its terminal: killed,
// or its terminal closed, herd run leaves the keeper to see the jobs done,
// and herd run --attach ID shows them, from the keeper while it runs, or
// from the run's folder once it has stopped. The keeper stops when herd
// run ends the run, or when herd run is gone and every job has finished
// (or every host is lost).
//
// The run's folder, under [RunsDir], holds:
//
//	keeper.json  what the keeper is to do (a [Config])
//	queue/       the run's queue
//	url, token   where the keeper serves it, while it runs
//	log          the keeper's messages (a host lost...), which herd run relays
//	lost         there once every host is lost
//	attached     the process id of a herd run --attach showing the run
package keeper

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/goherd/herd/internal/run/remote"
	"github.com/goherd/herd/internal/sshlogin"
	"github.com/goherd/herd/queue"
)

// Config is what a keeper is to do, which [Start] writes in the run's
// folder for [Keep] to read.
type Config struct {
	Run       string           `json:"run"`
	Parent    int              `json:"parent"` // herd run's process id
	Logins    []sshlogin.Login `json:"logins"`
	SSH       []string         `json:"ssh,omitempty"`
	Jobs      string           `json:"jobs,omitempty"`
	Delay     time.Duration    `json:"delay,omitempty"` // --sshdelay
	QueueName string           `json:"queue_name"`
	Herd      string           `json:"herd"`              // this herd's binary, to copy to the hosts
	Version   string           `json:"version,omitempty"` // its release version, if a release
	Lease     time.Duration    `json:"lease"`             // how long a lost host's job waits before another host runs it
}

// RunsDir is where the folders of the runs of herd run -S are kept: beside
// the queue's default folder.
func RunsDir() (string, error) {
	d, err := queue.DefaultDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(d), "runs"), nil
}

// kept is how long the folder of a run that nobody attached to is kept
// after its keeper stopped: as long as the queue keeps finished jobs.
const kept = 7 * 24 * time.Hour

// ForgetOld removes the folders of the runs in runs whose keeper has
// stopped more than kept ago.
func ForgetOld(runs string) {
	entries, _ := os.ReadDir(runs)
	for _, e := range entries {
		k := &Keeper{Dir: filepath.Join(runs, e.Name())}
		info, err := e.Info()
		if err != nil || !e.IsDir() || k.Alive() || time.Since(info.ModTime()) < kept {
			continue
		}
		if log, err := os.Stat(filepath.Join(k.Dir, "log")); err == nil && time.Since(log.ModTime()) < kept {
			continue
		}
		os.RemoveAll(k.Dir)
	}
}

// Keeper is herd run's handle on the keeper of a run.
type Keeper struct {
	Dir string    // the run's folder
	cmd *exec.Cmd // if this process started it
}

// URL returns where the keeper serves the run's queue, and its token; ""
// when no keeper runs.
func (k *Keeper) URL() (url, token string) {
	if !k.Alive() {
		return "", "" // its files may be left by a keeper killed outright
	}
	u, err1 := os.ReadFile(filepath.Join(k.Dir, "url"))
	t, err2 := os.ReadFile(filepath.Join(k.Dir, "token"))
	if err1 != nil || err2 != nil {
		return "", ""
	}
	return string(u), string(t)
}

// Alive reports whether the run's keeper is running.
func (k *Keeper) Alive() bool { return livePID(filepath.Join(k.Dir, "pid")) > 0 }

// livePID returns the process id the file holds, if that process runs; 0
// if not, or there is no such file.
func livePID(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil || pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// Start starts the keeper of a run in dir, as the command given (herd's
// hidden run-keeper command, which calls [Keep]) with dir as its last
// argument, in a session of its own, and waits until it serves the run's
// queue.
func Start(dir string, cfg Config, command ...string) (*Keeper, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "keeper.json"), b, 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(command[0], append(command[1:], dir)...)
	cmd.Stderr = logFile // a crash's message, if any
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("-S: starting the run's keeper: %w", err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		return nil, fmt.Errorf("-S: the run's keeper did not start: %s", strings.TrimSpace(string(log)))
	}
	return &Keeper{Dir: dir, cmd: cmd}, nil
}

// Stop stops the keeper, which stops the hosts' workers, and waits for it.
func (k *Keeper) Stop() {
	if k.cmd == nil {
		if pid := livePID(filepath.Join(k.Dir, "pid")); pid > 0 {
			syscall.Kill(pid, syscall.SIGTERM)
		}
		for deadline := time.Now().Add(30 * time.Second); k.Alive() && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		return
	}
	k.cmd.Process.Signal(syscall.SIGTERM)
	k.cmd.Wait()
}

// Follow relays the keeper's messages, from the log's offset from on, with
// say, and calls lost once every host is lost, until ctx is done.
func (k *Keeper) Follow(ctx context.Context, from int64, say func(string), lost func()) {
	f, err := os.Open(filepath.Join(k.Dir, "log"))
	if err != nil {
		return
	}
	defer f.Close()
	f.Seek(from, io.SeekStart)
	r := bufio.NewReader(f)
	var partial string
	told := false
	for {
		for {
			line, err := r.ReadString('\n')
			partial += line
			if err != nil {
				break
			}
			say(strings.TrimSuffix(partial, "\n"))
			partial = ""
		}
		if _, err := os.Stat(filepath.Join(k.Dir, "lost")); err == nil && !told {
			told = true
			lost()
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
}

// attachedAlive reports whether a herd run --attach shows the run in dir
// now: it says so in the file "attached".
func attachedAlive(dir string) bool { return livePID(filepath.Join(dir, "attached")) > 0 }

// Keep is the keeper of the run in dir, until sigs says to stop or the run
// is done with (see the package's documentation). It writes "ready" on
// ready once it serves the run's queue and has started the hosts.
func Keep(dir string, sigs <-chan os.Signal, ready io.Writer) error {
	b, err := os.ReadFile(filepath.Join(dir, "keeper.json"))
	if err != nil {
		return err
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	forget := false // the run never began: its folder goes, once the keeper is done
	defer func() {
		if forget {
			os.RemoveAll(dir)
		}
	}()
	logFile, err := os.OpenFile(filepath.Join(dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(logFile, format+"\n", args...)
	}
	srv, token, err := serveRunQueue(dir, logFile)
	if err != nil {
		return err
	}
	// Where it serves is forgotten only once the queue is closed: until
	// then, herd run --attach must not see the keeper gone and open the
	// queue's folder itself, which the keeper still holds.
	defer func() {
		for _, name := range []string{"pid", "url", "token"} {
			os.Remove(filepath.Join(dir, name))
		}
	}()
	defer srv.Close()
	fleet, err := sshlogin.Start(cfg.Logins, sshlogin.Config{
		SSH: cfg.SSH, Herd: cfg.Herd, Version: cfg.Version, QueueAddr: strings.TrimPrefix(srv.URL(), "nats://"), QueueName: cfg.QueueName,
		Token: token, Jobs: cfg.Jobs, Delay: cfg.Delay, Lease: cfg.Lease, Log: logf,
		Lost: func(all bool) {
			if all {
				os.WriteFile(filepath.Join(dir, "lost"), nil, 0o600)
			}
		},
	})
	if err != nil {
		return err
	}
	defer fleet.Stop()
	fmt.Fprintln(ready, "ready")
	if f, ok := ready.(*os.File); ok {
		f.Close() // herd run reads no more of it
	}
	forget, err = keepUntilDone(dir, cfg, srv, token, sigs, logf)
	return err
}

// serveRunQueue starts the run's queue on loopback, with a fresh token,
// and writes where it serves in the run's folder (url, token, pid).
func serveRunQueue(dir string, logTo io.Writer) (*queue.Server, string, error) {
	var tb [16]byte
	rand.Read(tb[:])
	token := hex.EncodeToString(tb[:])
	srv, err := queue.Serve(queue.ServerConfig{Listen: "127.0.0.1:0", Dir: filepath.Join(dir, "queue"), Token: token, SyncInterval: time.Second,
		Logger: slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return nil, "", fmt.Errorf("-S: starting the run's queue: %w", err)
	}
	for name, value := range map[string]string{"token": token, "url": srv.URL(), "pid": strconv.Itoa(os.Getpid())} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0o600); err != nil {
			srv.Close()
			return nil, "", err
		}
	}
	return srv, token, nil
}

// keepUntilDone returns once the keeper is to stop: on a signal, or, once
// herd run is gone and nobody attached shows the run, when every host is
// lost or every job of the run has finished. It looks every 2 seconds. It
// reports forget when the run never began.
func keepUntilDone(dir string, cfg Config, srv *queue.Server, token string, sigs <-chan os.Signal, logf func(string, ...any)) (forget bool, err error) {
	c, err := srv.Open(context.Background(), queue.Config{Token: token})
	if err != nil {
		return false, err
	}
	defer c.Close()
	finished := map[int]bool{}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-sigs:
			return false, nil
		case <-tick.C:
		}
		if syscall.Kill(cfg.Parent, 0) == nil || attachedAlive(dir) {
			continue // someone shows the run, and ends it
		}
		if _, err := os.Stat(filepath.Join(dir, "lost")); err == nil {
			return false, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		done, err := remote.Settled(ctx, c, cfg.Run, finished)
		cancel()
		if errors.Is(err, queue.ErrNotFound) {
			return true, nil // herd run died before the run began
		}
		if err != nil {
			logf("checking whether run %s is done: %v", cfg.Run, err)
		}
		if done {
			return false, nil
		}
	}
}

// Folder returns the keeper of run id's folder under runs: made for a
// new run, after the folders of old runs are forgotten; marked attached to
// by this process for an earlier one.
func Folder(runs, id string, attach bool) (*Keeper, error) {
	k := &Keeper{Dir: filepath.Join(runs, id)}
	if attach {
		if _, err := os.Stat(filepath.Join(k.Dir, "queue")); err != nil {
			return nil, fmt.Errorf("--attach %s: no such run of herd run -S on this machine; for a run on a queue, give its --queue URL", id)
		}
		return k, os.WriteFile(filepath.Join(k.Dir, "attached"), []byte(strconv.Itoa(os.Getpid())), 0o600)
	}
	ForgetOld(runs)
	return k, os.MkdirAll(k.Dir, 0o700)
}

// exited waits up to 30 seconds, or until ctx is done, for the process
// pid to exit, and reports whether it did.
func exited(ctx context.Context, pid int) bool {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if pid <= 0 || syscall.Kill(pid, 0) != nil {
			return true
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return false
		}
	}
	return false
}

// Open returns how the executor opens run id's queue: where the keeper
// serves it, or, once the keeper has stopped, in the run's folder, which
// is refused while jobs of the run are not done (their hosts are gone).
func (k *Keeper) Open(id string) func(ctx context.Context, log io.Writer) (remote.Client, error) {
	return func(ctx context.Context, log io.Writer) (remote.Client, error) {
		cfg := queue.Config{Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelWarn}))}
		pid := livePID(filepath.Join(k.Dir, "pid"))
		if url, token := k.URL(); url != "" {
			cfg.URL, cfg.Token = url, token
			c, err := queue.Open(ctx, cfg)
			if err == nil {
				return remote.Connected(c), nil
			}
			// The keeper may have seen the run done, and stopped, as
			// this process came to show it: then the run's queue is in
			// its folder once the keeper has exited.
			if !exited(ctx, pid) {
				return nil, err
			}
			cfg.URL, cfg.Token = "", ""
		}
		// The keeper has stopped: the run's queue, in its folder.
		cfg.Dir = filepath.Join(k.Dir, "queue")
		c, err := queue.Open(ctx, cfg)
		if err != nil {
			return nil, err
		}
		if settled, err := remote.Settled(ctx, c, id, map[int]bool{}); err == nil && !settled {
			c.Close()
			return nil, fmt.Errorf("run %s has jobs not done, and its hosts have stopped: start them again with herd run -S HOSTS --attach %s", id, id)
		}
		return remote.Connected(c), nil
	}
}
