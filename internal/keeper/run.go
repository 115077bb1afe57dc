package keeper

import (
	"cmp"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/goherd/herd/internal/run"
	"github.com/goherd/herd/internal/run/remote"
)

// ErrEveryHostLost ends a run of -S when no host is left to run its jobs.
var ErrEveryHostLost = errors.New("-S: every host is lost: the jobs not done were not run")

// Run runs r, a run of herd run -S whose queue its keeper serves, or with
// attach, attaches to the earlier run of that id. When the run ends here,
// the keeper stops and the run's folder goes; when herd run leaves it
// (detach, killed, or its terminal closed), the keeper sees it through,
// and herd run --attach ID shows it. It returns r's exit status.
func Run(ctx context.Context, r *run.Runner, sigs <-chan os.Signal, out io.Writer, cfg Config, attach string, detach bool) (int, error) {
	runs, err := RunsDir()
	if err != nil {
		return 0, err
	}
	id := cmp.Or(attach, remote.NewRunID())
	k, err := Folder(runs, id, attach != "")
	if err != nil {
		return 0, err
	}
	var from int64 // the keeper's messages before are not this herd run's
	if st, err := os.Stat(filepath.Join(k.Dir, "log")); err == nil {
		from = st.Size()
	}
	if !k.Alive() && len(cfg.Logins) > 0 {
		cfg.Run, cfg.Parent = id, os.Getpid()
		started, err := Start(k.Dir, cfg, cfg.Herd, "run-keeper")
		if err != nil {
			if attach == "" {
				os.RemoveAll(k.Dir)
			}
			return 0, err
		}
		k = started
	}
	exec := &remote.Executor{QueueName: cfg.QueueName, Attach: attach, RunID: id, HostsStarted: true,
		SubmitOnly: detach, Out: out}
	exec.Open = k.Open(id)
	followCtx, stopFollowing := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		k.Follow(followCtx, from, func(line string) { r.Warn("%s", line) },
			func() { exec.Leave(ErrEveryHostLost) })
	})
	status, err := r.Run(ctx, exec, sigs)
	stopFollowing()
	wg.Wait()
	if exec.Detached() || detach {
		return status, err // the keeper sees the run through
	}
	k.Stop()
	if exec.Complete() {
		os.RemoveAll(k.Dir)
	} else {
		r.Warn("run %s is kept, with the jobs not done: herd run -S HOSTS --attach %s runs them", id, id)
	}
	return status, err
}
