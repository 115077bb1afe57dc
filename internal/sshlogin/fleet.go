package sshlogin

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config says how to start herd work on the hosts.
type Config struct {
	SSH       []string      // the ssh command (--ssh); empty means ssh
	Herd      string        // this herd's binary, copied to the hosts that lack this version
	Version   string        // this herd's version, as the first line of herd version prints it
	QueueAddr string        // the queue's host:port, as this machine reaches it: the hosts reach it through ssh
	QueueName string        // the named queue the jobs are on
	Token     string        // the queue's token, if any, sent to the workers on their standard input
	Jobs      string        // -j for the hosts without N/, if given
	Lease     time.Duration // the workers' lease, if not the queue's: how soon a lost host's jobs go to the others
	Delay     time.Duration // between starting one host and the next (--sshdelay)
	// Log prints a message of herd run's.
	Log func(format string, args ...any)
	// Lost is called when a host is lost, with whether every host is.
	Lost func(all bool)
}

// Fleet is herd work running on the hosts of a run's logins.
type Fleet struct {
	cfg  Config
	hash string // of this herd's binary: its name in the hosts' cache

	quit chan struct{} // closed by Stop: hosts not started yet are not

	mu      sync.Mutex
	hosts   []*host
	lost    int
	stopped bool
	wg      sync.WaitGroup
}

// A host is a worker on one login: an ssh session, or herd work here.
type host struct {
	login Login
	cmd   *exec.Cmd
	stdin io.WriteCloser // holds the remote worker: closed, it stops
}

// Start starts a worker on each login, in the background: a host that
// cannot be reached, or dies, is said once and its jobs go to the others.
func Start(logins []Login, cfg Config) (*Fleet, error) {
	if len(cfg.SSH) == 0 {
		cfg.SSH = []string{"ssh"}
	}
	b, err := os.ReadFile(cfg.Herd)
	if err != nil {
		return nil, fmt.Errorf("-S: reading this herd to copy it to the hosts: %w", err)
	}
	sum := sha256.Sum256(b)
	f := &Fleet{cfg: cfg, hash: hex.EncodeToString(sum[:6]), quit: make(chan struct{})}
	for i, l := range logins {
		h := &host{login: l}
		f.hosts = append(f.hosts, h)
		f.wg.Go(func() {
			select {
			case <-time.After(time.Duration(i) * cfg.Delay):
				f.run(h)
			case <-f.quit:
			}
		})
	}
	return f, nil
}

// Stop stops every worker and waits for them: each finishes its running
// jobs (there are none once the run is over) and leaves nothing behind.
func (f *Fleet) Stop() {
	f.mu.Lock()
	if !f.stopped {
		close(f.quit)
	}
	f.stopped = true
	for _, h := range f.hosts {
		switch {
		case h.stdin != nil:
			h.stdin.Close() // the remote worker stops, then ssh ends
		case h.cmd != nil && h.cmd.Process != nil:
			h.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	f.mu.Unlock()
	stopAll := time.AfterFunc(15*time.Second, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, h := range f.hosts {
			if h.cmd != nil && h.cmd.Process != nil {
				h.cmd.Process.Kill()
			}
		}
	})
	f.wg.Wait()
	stopAll.Stop()
}

// run starts the worker of a host and waits for it.
func (f *Fleet) run(h *host) {
	var err error
	if h.login.Local {
		err = f.runLocal(h)
	} else {
		err = f.runRemote(h)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	f.lost++
	all := f.lost == len(f.hosts)
	msg := "its jobs go to the other hosts"
	if all {
		msg = "no host is left to run the jobs"
	}
	f.cfg.Log("host %s is lost (%v): %s", h.login.Text, err, msg)
	if f.cfg.Lost != nil {
		f.cfg.Lost(all)
	}
}

// workArgs are the arguments of herd work for a host, connecting to the
// queue at addr.
func (f *Fleet) workArgs(l Login, addr string) []string {
	// A worker stops when the run is over, or herd run is gone: with no
	// tunnel to the queue left, its running jobs have 2s, then are killed
	// (handed back, where the queue lasts).
	args := []string{"work", "--queue", "nats://" + addr, "--queue-name", f.cfg.QueueName, "--shutdown-timeout", "2s",
		"--sshlogin", l.Name(), "--sshhost", l.Host}
	if f.cfg.Lease > 0 {
		args = append(args, "--lease", f.cfg.Lease.String())
	}
	switch {
	case l.Jobs > 0:
		args = append(args, "-j", strconv.Itoa(l.Jobs))
	case f.cfg.Jobs != "":
		args = append(args, "-j", f.cfg.Jobs)
	}
	return args
}

// runLocal runs herd work on this machine, for the login ":".
func (f *Fleet) runLocal(h *host) error {
	cmd := exec.Command(f.cfg.Herd, append(f.workArgs(h.login, f.cfg.QueueAddr), "--files-here")...)
	cmd.Args[0] = "herd"
	cmd.Env = append(os.Environ(), "HERD_QUEUE_TOKEN="+f.cfg.Token)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if started, err := f.start(h, cmd, nil); !started || err != nil {
		return err
	}
	last := f.relay(h, stderr)
	return exited(cmd.Wait(), last)
}

// start starts a host's command, with the pipe that holds it, unless the
// fleet is stopping.
func (f *Fleet) start(h *host, cmd *exec.Cmd, stdin io.WriteCloser) (started bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false, nil
	}
	h.cmd, h.stdin = cmd, stdin
	return true, cmd.Start()
}

// ssh returns the ssh command that runs script on the host.
func (f *Fleet) ssh(l Login, opts []string, script string) *exec.Cmd {
	args := append([]string(nil), f.cfg.SSH...)
	if l.SSH != nil {
		args = append([]string(nil), l.SSH...)
	}
	// No terminal, no prompt for a password: fail, and say so.
	args = append(args, "-T", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3")
	if l.Port != "" {
		args = append(args, "-p", l.Port)
	}
	args = append(args, opts...)
	args = append(args, l.Dest, "sh -c '"+script+"'")
	cmd := exec.Command(args[0], args[1:]...)
	// Should herd run die without a word (kill -9), ssh goes with it, and
	// the session's end stops the worker on the host.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	return cmd
}

// probe finds the herd to run on a remote host: the one on its PATH if it
// is this version, else this herd's copy in the host's cache, copied there
// first if need be (the host must run this herd's OS and architecture).
func (f *Fleet) probe(h *host) (string, error) {
	l := h.login
	dir := `$HOME/.cache/herd/` + f.hash
	cached := dir + `/herd`
	cmd := f.ssh(l, nil, `uname -sm; (herd version 2>/dev/null | head -n 1); echo; test -x "`+cached+`" && echo cached; true`)
	out, err := f.output(h, cmd)
	if err != nil {
		return "", err
	}
	lines := strings.Split(string(out), "\n")
	for len(lines) < 3 {
		lines = append(lines, "")
	}
	if f.cfg.Version != "" && strings.TrimSpace(lines[1]) == f.cfg.Version {
		return "herd", nil
	}
	if strings.Contains(string(out), "\ncached\n") {
		return cached, nil
	}
	if want := unameOf(runtime.GOOS, runtime.GOARCH); strings.TrimSpace(lines[0]) != want {
		return "", fmt.Errorf("it is %q, this herd is for %q, and it has no herd of this version (%s) on its PATH: install it there", strings.TrimSpace(lines[0]), want, f.cfg.Version)
	}
	bin, err := os.Open(f.cfg.Herd)
	if err != nil {
		return "", err
	}
	defer bin.Close()
	st, err := bin.Stat()
	if err != nil {
		return "", err
	}
	// A copy cut short (the run ended, ssh died) must not become the
	// cached herd: it is kept only whole.
	tmp := cached + `.$$`
	cmd = f.ssh(l, nil, `mkdir -p "`+dir+`" && cat > "`+tmp+`" && [ "$(wc -c < "`+tmp+`")" -eq `+strconv.FormatInt(st.Size(), 10)+
		` ] && chmod +x "`+tmp+`" && mv "`+tmp+`" "`+cached+`" || { rm -f "`+tmp+`"; exit 1; }`)
	cmd.Stdin = bin
	if _, err := f.output(h, cmd); err != nil {
		return "", fmt.Errorf("copying herd there: %w", err)
	}
	return cached, nil
}

// errStopped is what a host's start-up returns once the fleet stops.
var errStopped = errors.New("stopped")

// unameOf is what uname -sm prints on a system Go calls goos/goarch.
func unameOf(goos, goarch string) string {
	sys := map[string]string{"linux": "Linux", "darwin": "Darwin", "freebsd": "FreeBSD"}[goos]
	machine := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686"}[goarch]
	if goos == "darwin" && goarch == "arm64" {
		machine = "arm64"
	}
	return sys + " " + machine
}

// output runs cmd for a host, for up to a minute (Stop ends it sooner),
// and returns its output, or an error with what it said.
func (f *Fleet) output(h *host, cmd *exec.Cmd) ([]byte, error) {
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	cmd.WaitDelay = time.Second
	if started, err := f.start(h, cmd, nil); !started || err != nil {
		return nil, cmp.Or(err, errStopped)
	}
	t := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	defer t.Stop()
	if err := cmd.Wait(); err != nil {
		return nil, exited(err, strings.TrimSpace(stderr.String()))
	}
	return out.Bytes(), nil
}

// runRemote starts herd work on a remote host through ssh, with a reverse
// tunnel from a port of the host's loopback to the queue here, and waits
// for it. A remote port taken already is tried again with another.
func (f *Fleet) runRemote(h *host) error {
	herd, err := f.probe(h)
	if err != nil {
		return err
	}
	for try := 1; ; try++ {
		port := 20000 + rand.IntN(40000)
		err := f.startRemote(h, herd, port)
		if err == nil || !strings.Contains(err.Error(), "forwarding failed") || try == 5 {
			return err
		}
	}
}

// startRemote runs the worker of a remote host, whose queue is on its
// loopback's port, until it ends.
func (f *Fleet) startRemote(h *host, herd string, port int) error {
	// The token comes on standard input, out of sight of ps; the worker
	// stops when standard input ends: when herd run closes it, or ssh
	// dies. (sh gives what it starts with & /dev/null as standard input:
	// the watcher reads the session's from fd 3.) Nothing in it is quoted
	// with ': it goes inside sh -c '...'.
	args := strings.Join(f.workArgs(h.login, "127.0.0.1:"+strconv.Itoa(port)), " ")
	script := `read -r t; HERD_QUEUE_TOKEN=$t; export HERD_QUEUE_TOKEN; exec 3<&0; "` + herd + `" ` + args + ` 3<&- & p=$!; (cat <&3 >/dev/null; kill $p) >/dev/null 2>&1 & exec 3<&-; wait $p`
	cmd := f.ssh(h.login, []string{"-o", "ExitOnForwardFailure=yes", "-R", fmt.Sprintf("127.0.0.1:%d:%s", port, f.cfg.QueueAddr)}, script)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if started, err := f.start(h, cmd, stdin); !started || err != nil {
		return err
	}
	fmt.Fprintln(stdin, f.cfg.Token)
	last := f.relay(h, stderr)
	return exited(cmd.Wait(), last)
}

// relay passes on what a worker says as the host's, but its greeting and
// what it says as it stops, until it ends, and returns the last line.
func (f *Fleet) relay(h *host, r io.Reader) string {
	var last string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		f.mu.Lock()
		stopping := f.stopped
		f.mu.Unlock()
		if stopping || strings.Contains(line, "herd work: running jobs of") {
			continue // its greeting, or its goodbye
		}
		last = line
		f.cfg.Log("host %s: %s", h.login.Text, line)
	}
	return last
}

// exited describes how a worker or ssh ended, with the last thing it said.
func exited(err error, said string) error {
	var ee *exec.ExitError
	switch {
	case err == nil && said == "":
		return errors.New("it exited")
	case err == nil:
		return errors.New(said)
	case errors.As(err, &ee) && said != "":
		return fmt.Errorf("%s: %s", ee.ProcessState, said)
	}
	return err
}
