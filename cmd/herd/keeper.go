package main

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
	"github.com/spf13/cobra"
)

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
// The run's folder, under runsDir, holds:
//
//	keeper.json  what the keeper is to do (keeperConfig)
//	queue/       the run's queue
//	url, token   where the keeper serves it, while it runs
//	log          the keeper's messages (a host lost...), which herd run relays
//	lost         there once every host is lost
//	attached     the process id of a herd run --attach showing the run
type keeperConfig struct {
	Run       string           `json:"run"`
	Parent    int              `json:"parent"` // herd run's process id
	Logins    []sshlogin.Login `json:"logins"`
	SSH       []string         `json:"ssh,omitempty"`
	Jobs      string           `json:"jobs,omitempty"`
	Delay     time.Duration    `json:"delay,omitempty"` // --sshdelay
	QueueName string           `json:"queue_name"`
}

// runsDir is where the folders of the runs of herd run -S are kept: beside
// the queue's default folder.
func runsDir() (string, error) {
	d, err := queue.DefaultDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(d), "runs"), nil
}

// runsKept is how long the folder of a run that nobody attached to is kept
// after its keeper stopped: as long as the queue keeps finished jobs.
const runsKept = 7 * 24 * time.Hour

// forgetOldRuns removes the folders of the runs in runs whose keeper has
// stopped more than runsKept ago.
func forgetOldRuns(runs string) {
	entries, _ := os.ReadDir(runs)
	for _, e := range entries {
		k := &keeper{dir: filepath.Join(runs, e.Name())}
		info, err := e.Info()
		if err != nil || !e.IsDir() || k.alive() || time.Since(info.ModTime()) < runsKept {
			continue
		}
		if log, err := os.Stat(filepath.Join(k.dir, "log")); err == nil && time.Since(log.ModTime()) < runsKept {
			continue
		}
		os.RemoveAll(k.dir)
	}
}

// keeper is herd run's handle on the keeper of a run.
type keeper struct {
	dir string
	cmd *exec.Cmd // if this herd run started it
}

// url and token say where the keeper serves the run's queue; "" when no
// keeper runs.
func (k *keeper) url() (url, token string) {
	if !k.alive() {
		return "", "" // its files may be left by a keeper killed outright
	}
	u, err1 := os.ReadFile(filepath.Join(k.dir, "url"))
	t, err2 := os.ReadFile(filepath.Join(k.dir, "token"))
	if err1 != nil || err2 != nil {
		return "", ""
	}
	return string(u), string(t)
}

// alive reports whether the run's keeper is running.
func (k *keeper) alive() bool { return livePID(filepath.Join(k.dir, "pid")) > 0 }

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

// startKeeper starts the keeper of a run in dir and waits until it serves
// the run's queue.
func startKeeper(dir string, cfg keeperConfig, self string) (*keeper, error) {
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
	cmd := exec.Command(self, "run-keeper", dir)
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
	return &keeper{dir: dir, cmd: cmd}, nil
}

// stop stops the keeper, which stops the hosts' workers, and waits for it.
func (k *keeper) stop() {
	if k.cmd == nil {
		if pid := livePID(filepath.Join(k.dir, "pid")); pid > 0 {
			syscall.Kill(pid, syscall.SIGTERM)
		}
		for deadline := time.Now().Add(30 * time.Second); k.alive() && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		return
	}
	k.cmd.Process.Signal(syscall.SIGTERM)
	k.cmd.Wait()
}

// follow relays the keeper's messages, from the log's offset from on, with
// say, and calls lost once every host is lost, until ctx is done.
func (k *keeper) follow(ctx context.Context, from int64, say func(string), lost func()) {
	f, err := os.Open(filepath.Join(k.dir, "log"))
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
		if _, err := os.Stat(filepath.Join(k.dir, "lost")); err == nil && !told {
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

func newKeeperCommand(sigs <-chan os.Signal) *cobra.Command {
	return &cobra.Command{
		Use:    "run-keeper DIR",
		Short:  "keep a run of herd run -S going: started by herd run",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return keep(args[0], sigs, cmd.OutOrStdout())
		},
	}
}

// keep is the keeper of the run in dir: see keeperConfig.
func keep(dir string, sigs <-chan os.Signal, ready io.Writer) error {
	b, err := os.ReadFile(filepath.Join(dir, "keeper.json"))
	if err != nil {
		return err
	}
	var cfg keeperConfig
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
	defer srv.Close()
	defer func() {
		for _, name := range []string{"pid", "url", "token"} {
			os.Remove(filepath.Join(dir, name))
		}
	}()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fleet, err := sshlogin.Start(cfg.Logins, sshlogin.Config{
		SSH: cfg.SSH, Herd: self, Version: releaseVersion(), QueueAddr: strings.TrimPrefix(srv.URL(), "nats://"), QueueName: cfg.QueueName,
		Token: token, Jobs: cfg.Jobs, Delay: cfg.Delay, Lease: hostsLease, Log: logf,
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
func keepUntilDone(dir string, cfg keeperConfig, srv *queue.Server, token string, sigs <-chan os.Signal, logf func(string, ...any)) (forget bool, err error) {
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
