package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/goherd/herd/internal/buildinfo"
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
		return withStatus(keeper.Run(ctx, r, sigs, out, keeper.Config{Logins: logins, SSH: strings.Fields(o.ssh), Jobs: jobs, Delay: delay, QueueName: o.queueName,
			Herd: self, Version: buildinfo.Release(version), Lease: hostsLease}, o.Attach, o.Detach))
	}
	exec := &remote.Executor{QueueName: o.queueName, URL: o.conn.url, Attach: o.Attach, HostsStarted: true, Open: o.openQueue,
		After: o.After, AfterEach: o.AfterEach, Key: o.KeyTemplate()}
	o.conn.resolve()
	u, err := url.Parse(strings.Split(o.conn.url, ",")[0])
	if err != nil || u.Port() == "" {
		return fmt.Errorf("-S with --queue %s: want nats://HOST:PORT", o.conn.url)
	}
	fleet, err := sshlogin.Start(logins, sshlogin.Config{
		SSH: strings.Fields(o.ssh), Herd: self, Version: buildinfo.Release(version), QueueName: o.queueName,
		QueueAddr: u.Host, Token: o.conn.token, Jobs: jobs, Delay: delay,
		Log: func(format string, args ...any) { r.Warn(format, args...) },
		Lost: func(all bool) {
			if all {
				exec.Leave(keeper.ErrEveryHostLost)
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
