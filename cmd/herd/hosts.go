package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/goherd/herd/internal/keeper"
	"github.com/goherd/herd/internal/run"
	"github.com/goherd/herd/internal/run/remote"
	"github.com/goherd/herd/internal/sshlogin"
)

// hostsLease is how long a job of a lost host waits before another host
// runs it.
const hostsLease = 10 * time.Second

// runOnHosts is herd run -S: herd work started through ssh on each host,
// with a reverse tunnel to the queue, so that no port is opened to the
// network. The queue is the run's own, which its keeper serves on
// loopback (package keeper), or the lasting one of --queue, where the hosts
// are started by herd run and stop with it (--attach starts them again).
// It is also herd run --attach ID for a run of the first kind.
func runOnHosts(ctx context.Context, o *runOptions, r *run.Runner, sigs <-chan os.Signal, changed func(string) bool, out io.Writer) error {
	var logins []sshlogin.Login
	if o.onHosts() { // else --attach to a run of -S, with its hosts
		var err error
		if logins, err = sshlogin.Parse(o.sshLogins, o.sshLoginFiles); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("-S: finding this herd to start it on the hosts: %w", err)
	}
	var jobs string
	if changed("jobs") || changed("max-procs") {
		jobs = o.Jobs
	}
	delay, err := run.ParseSeconds("--sshdelay", o.sshDelay)
	if err != nil {
		return err
	}
	if o.conn.url == "" {
		return runKept(ctx, o, r, sigs, out, keeper.Config{Logins: logins, SSH: strings.Fields(o.ssh), Jobs: jobs, Delay: delay, QueueName: o.queueName,
			Herd: self, Version: releaseVersion(), Lease: hostsLease})
	}
	exec := &remote.Executor{QueueName: o.queueName, URL: o.conn.url, Attach: o.Attach, HostsStarted: true, Open: o.openQueue,
		After: o.After, AfterEach: o.AfterEach, Key: o.KeyTemplate()}
	o.conn.resolve()
	u, err := url.Parse(strings.Split(o.conn.url, ",")[0])
	if err != nil || u.Port() == "" {
		return fmt.Errorf("-S with --queue %s: want nats://HOST:PORT", o.conn.url)
	}
	fleet, err := sshlogin.Start(logins, sshlogin.Config{
		SSH: strings.Fields(o.ssh), Herd: self, Version: releaseVersion(), QueueName: o.queueName,
		QueueAddr: u.Host, Token: o.conn.token, Jobs: jobs, Delay: delay,
		Log: func(format string, args ...any) { r.Warn(format, args...) },
		Lost: func(all bool) {
			if all {
				exec.Leave(errors.New("-S: every host is lost: the jobs not done were not run"))
			}
		},
	})
	if err != nil {
		return err
	}
	status, err := r.Run(ctx, exec, sigs)
	fleet.Stop()
	return withStatus(status, err)
}

// runKept runs, or attaches to, a run of herd run -S whose queue its
// keeper serves. When the run ends here, the keeper stops and the run's
// folder goes; when herd run leaves it (--detach, killed, or its terminal
// closed), the keeper sees it through, and herd run --attach ID shows it.
func runKept(ctx context.Context, o *runOptions, r *run.Runner, sigs <-chan os.Signal, out io.Writer, cfg keeper.Config) error {
	runs, err := keeper.RunsDir()
	if err != nil {
		return err
	}
	id := cmp.Or(o.Attach, remote.NewRunID())
	k, err := keeper.Folder(runs, id, o.Attach != "")
	if err != nil {
		return err
	}
	var from int64 // the keeper's messages before are not this herd run's
	if st, err := os.Stat(filepath.Join(k.Dir, "log")); err == nil {
		from = st.Size()
	}
	if !k.Alive() && len(cfg.Logins) > 0 {
		cfg.Run, cfg.Parent = id, os.Getpid()
		started, err := keeper.Start(k.Dir, cfg, cfg.Herd, "run-keeper")
		if err != nil {
			if o.Attach == "" {
				os.RemoveAll(k.Dir)
			}
			return err
		}
		k = started
	}
	exec := &remote.Executor{QueueName: o.queueName, Attach: o.Attach, RunID: id, HostsStarted: true,
		SubmitOnly: o.Detach, Out: out}
	exec.Open = k.Open(id)
	followCtx, stopFollowing := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		k.Follow(followCtx, from, func(line string) { r.Warn("%s", line) },
			func() { exec.Leave(errors.New("-S: every host is lost: the jobs not done were not run")) })
	})
	status, err := r.Run(ctx, exec, sigs)
	stopFollowing()
	wg.Wait()
	if exec.Detached() || o.Detach {
		return withStatus(status, err) // the keeper sees the run through
	}
	k.Stop()
	if exec.Complete() {
		os.RemoveAll(k.Dir)
	} else {
		r.Warn("run %s is kept, with the jobs not done: herd run -S HOSTS --attach %s runs them", id, id)
	}
	return withStatus(status, err)
}

// releaseVersion is the first line of herd version for a release build: a
// herd on a host's PATH that prints the same is this one. A build between
// releases has none: hosts get a copy of it.
func releaseVersion() string {
	v, _, _ := strings.Cut(buildVersion(), "\n")
	if !strings.HasPrefix(v, "herd v") || strings.Contains(v, "devel") || strings.Contains(v, "dirty") {
		return ""
	}
	return v
}
