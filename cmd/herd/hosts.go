package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/goherd/herd/internal/run"
	"github.com/goherd/herd/internal/run/remote"
	"github.com/goherd/herd/internal/sshlogin"
	"github.com/goherd/herd/queue"
)

// hostsLease is how long a job of a lost host waits before another host
// runs it.
const hostsLease = 10 * time.Second

// runOnHosts is herd run -S: herd work started through ssh on each host,
// with a reverse tunnel to the queue, so that no port is opened to the
// network. The queue is one this run serves on loopback, for itself, or
// the lasting one of --queue (where the run can be attached to, and the
// hosts started again with --attach). When the run ends, the workers stop.
func runOnHosts(ctx context.Context, o *runOptions, r *run.Runner, sigs <-chan os.Signal, changed func(string) bool) error {
	logins, err := sshlogin.Parse(o.sshLogins, o.sshLoginFiles)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("-S: finding this herd to start it on the hosts: %w", err)
	}
	exec := &remote.Executor{QueueName: o.queueName, URL: o.conn.url, Attach: o.attach, HostsStarted: true}
	fc := sshlogin.Config{SSH: strings.Fields(o.ssh), Herd: self, Version: releaseVersion(), QueueName: o.queueName,
		Log: func(format string, args ...any) { r.Warn(format, args...) },
		Lost: func(all bool) {
			if all {
				exec.Leave(errors.New("-S: every host is lost: the jobs not done were not run"))
			}
		},
	}
	if changed("jobs") || changed("max-procs") {
		fc.Jobs = o.jobs
	}
	if o.conn.url != "" {
		o.conn.resolve()
		fc.Token = o.conn.token
		u, err := url.Parse(strings.Split(o.conn.url, ",")[0])
		if err != nil || u.Port() == "" {
			return fmt.Errorf("-S with --queue %s: want nats://HOST:PORT", o.conn.url)
		}
		fc.QueueAddr, exec.Open = u.Host, o.openQueue
	} else {
		dir, err := os.MkdirTemp("", "herd-run-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		var b [16]byte
		rand.Read(b[:])
		fc.Token, fc.Lease, exec.Private = hex.EncodeToString(b[:]), hostsLease, true
		srv, err := queue.Serve(queue.ServerConfig{Listen: "127.0.0.1:0", Dir: dir, Token: fc.Token, SyncInterval: time.Second,
			Logger: slog.New(slog.NewTextHandler(r.Log(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			return fmt.Errorf("-S: starting the run's queue: %w", err)
		}
		defer srv.Close()
		u, err := url.Parse(srv.URL())
		if err != nil {
			return err
		}
		fc.QueueAddr = u.Host
		exec.Open = func(ctx context.Context, log io.Writer) (remote.Client, error) {
			c, err := queue.Open(ctx, queue.Config{URL: srv.URL(), Token: fc.Token, Logger: slog.New(slog.NewTextHandler(log, nil))})
			if err != nil {
				return nil, err
			}
			return remote.Connected(c), nil
		}
	}
	fleet, err := sshlogin.Start(logins, fc)
	if err != nil {
		return err
	}
	status := r.Run(ctx, exec, sigs)
	fleet.Stop()
	return withStatus(status)
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
