package main

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/goherd/herd/internal/testutil"
)

// sshHosts are sshd servers on 127.0.0.1, each a "host" of herd run -S,
// reached with the ssh command SSH and a key made for the test.
type sshHosts struct {
	SSH   string // --ssh: ssh with a config that names the hosts h1, h2 ...
	Home  string // the home folder of the hosts' sessions
	sshds []*exec.Cmd
	logs  []*testutil.Pipe // what each sshd wrote
}

// startSSHHosts starts n sshd servers on loopback ports, as hosts h1 to
// hn. sshd is Debian's openssh-server, which CI installs and requires
// (HERD_SSHD=required): there, without it the test fails; elsewhere, as
// on a machine with only Go, it is skipped, saying why.
//
// The sessions run in the user's login shell, but in a home of the test's:
// the shell's start-up files are the machine's, and may take locks (a
// shell manager's did, which a host killed by a test left taken: every
// later session waited a minute for it).
func startSSHHosts(t *testing.T, n int) *sshHosts {
	t.Helper()
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		sshd, err = exec.LookPath("/usr/sbin/sshd")
	}
	if _, sshErr := exec.LookPath("ssh"); err != nil || sshErr != nil {
		testutil.Need(t, "HERD_SSHD", fmt.Sprintf("ssh and sshd are needed for the tests of herd run -S: %v (apt-get install openssh-client openssh-server)", cmp.Or(err, sshErr)))
	}
	dir := t.TempDir()
	keygen := func(path string) {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	keygen(filepath.Join(dir, "hostkey"))
	keygen(filepath.Join(dir, "id"))
	pub, err := os.ReadFile(filepath.Join(dir, "id.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		os.MkdirAll("/run/sshd", 0o755) // sshd's privilege separation folder
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	// The hosts' sessions have a home of their own (SetEnv below): each
	// test's hosts keep their copy of herd and their jobs' folders apart,
	// and the user's shell start-up files are not run.
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	h := &sshHosts{Home: home}
	client := fmt.Sprintf("Host *\n  IdentityFile %s/id\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  User %s\n", dir, me.Username)
	for i, port := range testutil.FreePorts(t, n) {
		conf := filepath.Join(dir, fmt.Sprintf("sshd%d.conf", i+1))
		err := os.WriteFile(conf, fmt.Appendf(nil, `Port %d
ListenAddress 127.0.0.1
HostKey %s/hostkey
AuthorizedKeysFile %s/authorized_keys
PidFile %s/sshd%d.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowTcpForwarding yes
PermitRootLogin prohibit-password
SetEnv HOME=%s
`, port, dir, dir, dir, i+1, home), 0o600)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(sshd, "-D", "-e", "-f", conf)
		log, err := testutil.NewPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = log.File() // the sessions, sshd's children, write here too
		err = cmd.Start()
		log.Started()
		if err != nil {
			log.End(0)
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if left := log.End(orphanWait); len(left) > 0 {
				t.Errorf("sessions of host h%d still ran %v after the test (now killed):\n%s", i+1, orphanWait, strings.Join(left, "\n"))
			}
		})
		h.sshds, h.logs = append(h.sshds, cmd), append(h.logs, log)
		client = fmt.Sprintf("Host h%d\n  HostName 127.0.0.1\n  Port %d\n", i+1, port) + client
	}
	config := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(config, []byte(client), 0o600); err != nil {
		t.Fatal(err)
	}
	h.SSH = "ssh -F " + config
	// Wait until each host answers.
	for i := range h.sshds {
		testutil.EventuallyNil(t, fmt.Sprintf("sshd h%d to answer", i+1), func() error {
			out, err := exec.Command("ssh", "-F", config, "-o", "BatchMode=yes", fmt.Sprintf("h%d", i+1), "echo ready").CombinedOutput()
			if err == nil && strings.TrimSpace(string(out)) != "ready" {
				err = fmt.Errorf("it said %q", out)
			}
			if err != nil {
				return fmt.Errorf("%v; sshd said: %s", err, h.logs[i])
			}
			return nil
		})
	}
	return h
}

// descendants returns the processes started by pid, at any depth.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces; it ends at the last ).
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 {
			ppid, _ := strconv.Atoi(fields[1])
			children[ppid] = append(children[ppid], p)
		}
	}
	var all []int
	for next := []int{pid}; len(next) > 0; {
		p := next[0]
		next = append(next[1:], children[p]...)
		all = append(all, children[p]...)
	}
	return all
}

// assertNothingLeft fails unless every session of the hosts has ended:
// nothing of the run is left running on them.
func (h *sshHosts) assertNothingLeft(t *testing.T) {
	t.Helper()
	testutil.EventuallyNil(t, "every session of the hosts to end", func() error {
		var left []string
		for _, s := range h.sshds {
			if s.ProcessState == nil {
				for _, p := range descendants(s.Process.Pid) {
					b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
					left = append(left, strings.ReplaceAll(string(b), "\x00", " "))
				}
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("processes left on the hosts after the run:\n%s", strings.Join(left, "\n"))
		}
		return nil
	})
}

// herd run -S h1,h2 gives what a local run gives: output, exit status and
// job log; the hosts get herd (a copy of this one) and keep nothing
// running afterwards.
func TestSSHLoginRunLikeLocal(t *testing.T) {
	t.Parallel()
	hosts := startSSHHosts(t, 2)
	dir := t.TempDir()
	run := func(where ...string) (string, []string, int, string) {
		args := append([]string{"run"}, where...)
		args = append(args, "-k", "--joblog", "log.tsv", "echo {} $(( {} * 2 )); [ {} != 7 ]", ":::")
		p := startProc(t, dir, nil, append(args, inputs(30)...)...)
		st := p.status(t)
		return p.out.String(), jobRows(t, filepath.Join(dir, "log.tsv")), st, p.errOut.String()
	}
	localOut, localRows, localStatus, _ := run()
	for _, logins := range [][]string{{"-S", "h1,h2"}, {"-S", "2/h1", "-S", "1/:"}} {
		out, rows, status, errOut := run(append(logins, "--ssh", hosts.SSH)...)
		if status != 1 || localStatus != 1 {
			t.Errorf("%v: exit status %d, here %d; want 1 (job 7 fails); error output:\n%s", logins, status, localStatus, errOut)
		}
		if out != localOut {
			t.Errorf("%v: output differs from the local run's:\n%s\nwant:\n%s", logins, out, localOut)
		}
		if len(rows) != 30 || !slices.Equal(rows, localRows) {
			t.Errorf("%v: job log (%d rows) differs from the local run's (%d rows)", logins, len(rows), len(localRows))
		}
		hosts.assertNothingLeft(t)
	}
}

// A host that dies mid-run (its sshd and all it started killed): its jobs
// go to the other host, one line says so, and every job runs and is shown
// once.
func TestSSHLoginHostDies(t *testing.T) {
	t.Parallel()
	hosts := startSSHHosts(t, 2)
	dir := t.TempDir()
	p := startProc(t, dir, nil, append([]string{"run", "-S", "2/h1,2/h2", "--ssh", hosts.SSH, "sleep 0.3; echo done {}", ":::"}, inputs(40)...)...)
	waitDone(t, p, 4)
	h2 := hosts.sshds[1]
	for _, pid := range append(descendants(h2.Process.Pid), h2.Process.Pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if st := p.status(t); st != 0 {
		t.Fatalf("exit status %d, want 0; error output:\n%s", st, p.errOut.String())
	}
	assertEachOnce(t, p.out.String(), 40)
	if n := strings.Count(p.errOut.String(), "host 2/h2 is lost"); n != 1 {
		t.Errorf("%d lines say host 2/h2 is lost, want 1; error output:\n%s", n, p.errOut.String())
	}
	hosts.assertNothingLeft(t)
}

// No host can be reached: herd run says why for each and exits 255, at
// once, rather than waiting for workers that will never come.
func TestSSHLoginNoHost(t *testing.T) {
	t.Parallel()
	hosts := startSSHHosts(t, 1)
	port := testutil.FreePorts(t, 1)[0]
	p := startProc(t, t.TempDir(), nil, "run", "-S", "h1:"+strconv.Itoa(port)+",nosuchuser@h1", "--ssh", hosts.SSH, "echo", ":::", "a")
	if st := p.status(t); st != 255 {
		t.Fatalf("exit status %d, want 255; error output:\n%s", st, p.errOut.String())
	}
	for _, want := range []string{"host h1:" + strconv.Itoa(port) + " is lost", "host nosuchuser@h1 is lost", "every host is lost"} {
		if !strings.Contains(p.errOut.String(), want) {
			t.Errorf("error output does not say %q:\n%s", want, p.errOut.String())
		}
	}
}

// herd run -S killed outright (kill -9), or losing its terminal (SIGHUP),
// mid-run: the run goes on, its keeper holding the queue and the hosts;
// herd run --attach ID shows every job of it, once; then nothing of it is
// left on the hosts or here.
func TestSSHLoginSubmitterGone(t *testing.T) {
	t.Parallel()
	hosts := startSSHHosts(t, 2)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			env := []string{"XDG_DATA_HOME=" + t.TempDir()}
			p := startProc(t, dir, env, append([]string{"run", "-S", "2/h1,2/h2", "--ssh", hosts.SSH, "sleep 0.3; echo done {}", ":::"}, inputs(40)...)...)
			id := p.waitOutput(t, `run (\w+): the jobs go to the queue`)
			waitDone(t, p, 4)
			p.cmd.Process.Signal(sig)
			p.status(t)
			before := p.out.String()
			if strings.Count(before, "done") == 40 {
				t.Fatal("every job was done before herd run stopped: the test shows nothing")
			}

			a := startProc(t, dir, env, "run", "--attach", id)
			if st := a.status(t); st != 0 {
				t.Fatalf("attach: exit status %d, want 0; error output:\n%s", st, a.errOut.String())
			}
			assertEachOnce(t, a.out.String(), 40)
			hosts.assertNothingLeft(t)
			runs := filepath.Join(strings.TrimPrefix(env[0], "XDG_DATA_HOME="), "herd", "runs")
			// The keeper, told to stop, may still be going as attach ends.
			testutil.EventuallyNil(t, "the run's folder to go", func() error {
				if left, _ := os.ReadDir(runs); len(left) > 0 {
					return fmt.Errorf("the run's folder is left in %s: %v", runs, left)
				}
				return nil
			})
			if again := startProc(t, dir, env, "run", "--attach", id); again.status(t) == 0 || !strings.Contains(again.errOut.String(), "no such run") {
				t.Errorf("a second attach to the finished run: %s; want it refused, no such run", again.errOut.String())
			}
		})
	}
}

// --transfer, --return, --cleanup (--trc) and --basefile with -S: each
// job's input goes to the host that runs it, its output file comes back
// here, and nothing of it is left on the host.
func TestSSHLoginTransferReturnCleanup(t *testing.T) {
	t.Parallel()
	hosts := startSSHHosts(t, 2)
	dir := t.TempDir()
	// The jobs run in the hosts' home folder.
	tag := "herd-test"
	base := tag + "-base.txt"
	if err := os.WriteFile(filepath.Join(dir, base), []byte("base\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var ins []string
	for i := 1; i <= 6; i++ {
		in := fmt.Sprintf("%s-%d.txt", tag, i)
		if err := os.WriteFile(filepath.Join(dir, in), []byte(strings.Repeat("x", i*1000)), 0o644); err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	p := startProc(t, dir, nil, append([]string{"run", "-S", "h1,h2", "--ssh", hosts.SSH, "--basefile", base, "--trc", "{}.out",
		"cat " + base + " {} | wc -c > {}.out", ":::"}, ins...)...)
	if st := p.status(t); st != 0 {
		t.Fatalf("exit status %d, want 0; error output:\n%s", st, p.errOut.String())
	}
	for i, in := range ins {
		got, err := os.ReadFile(filepath.Join(dir, in+".out"))
		if want := strconv.Itoa((i+1)*1000+5) + "\n"; err != nil || string(got) != want {
			t.Errorf("%s.out: %q (%v), want %q", in, got, err, want)
		}
	}
	hosts.assertNothingLeft(t)
	if left, _ := filepath.Glob(filepath.Join(hosts.Home, tag+"*")); len(left) > 0 {
		t.Errorf("files left on the hosts: %q", left)
		for _, f := range left {
			os.Remove(f)
		}
	}
}

// --workdir on a host: . is the same folder as here (outside the home
// folder: the same path); ... a new folder for each job, where its
// --transfer and --return files are, gone after it with --cleanup. And a
// job knows its host: {host} and {sshlogin} with --plus.
func TestSSHLoginWorkdir(t *testing.T) {
	t.Parallel()
	hosts := startSSHHosts(t, 1)
	dir := t.TempDir()
	p := startProc(t, dir, nil, "run", "-S", "h1", "--ssh", hosts.SSH, "--sshdelay", "0.1", "-M", "--wd", ".", "pwd; : {}", ":::", "x")
	if st := p.status(t); st != 0 || p.out.String() != dir+"\n" {
		t.Errorf("--wd . on a host: status %d, output %q, want %q; error output:\n%s", st, p.out.String(), dir+"\n", p.errOut.String())
	}
	p = startProc(t, dir, nil, "run", "-S", "2/h1", "--ssh", hosts.SSH, "--plus", "echo {host} {sshlogin} $PARALLEL_SSHHOST; : {}", ":::", "x")
	if st := p.status(t); st != 0 || p.out.String() != "h1 h1 h1\n" {
		t.Errorf("{host} {sshlogin} on h1: status %d, output %q, want \"h1 h1 h1\\n\"; error output:\n%s", st, p.out.String(), p.errOut.String())
	}
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p = startProc(t, dir, nil, "run", "-S", "h1", "--ssh", hosts.SSH, "--wd", "...", "--trc", "{}.out", "pwd > {}.out; cat {} >> {}.out", ":::", "in.txt")
	if st := p.status(t); st != 0 {
		t.Fatalf("--wd ... --trc on a host: status %d; error output:\n%s", st, p.errOut.String())
	}
	out, err := os.ReadFile(filepath.Join(dir, "in.txt.out"))
	where, data, _ := strings.Cut(string(out), "\n")
	if err != nil || !strings.HasPrefix(where, filepath.Join(hosts.Home, ".parallel", "tmp")+"/") || data != "data\n" {
		t.Fatalf("in.txt.out = %q, %v; want the job's folder under ~/.parallel/tmp, then the input", out, err)
	}
	if _, err := os.Stat(where); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the job's folder %s after the job: %v, want it gone", where, err)
	}
	hosts.assertNothingLeft(t)
}

// -S with --queue URL: the hosts work for a lasting queue, through ssh
// tunnels. Killed outright, herd run leaves the run on the queue (its hosts
// stop); herd run -S ... --attach ID starts them again and shows every job
// of the run, once.
func TestSSHLoginLastingQueue(t *testing.T) {
	t.Parallel()
	hosts := startSSHHosts(t, 1)
	url := serveQueue(t)
	dir := t.TempDir()
	p := startProc(t, dir, nil, append([]string{"run", "-S", "2/h1", "--ssh", hosts.SSH, "--queue", url, "sleep 0.2; echo done {}", ":::"}, inputs(30)...)...)
	run := p.waitOutput(t, `run (\w+): the jobs go to the queue`)
	waitDone(t, p, 3)
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.status(t)
	hosts.assertNothingLeft(t)

	a := startProc(t, dir, nil, "run", "-S", "2/h1", "--ssh", hosts.SSH, "--queue", url, "--attach", run)
	if st := a.status(t); st != 0 {
		t.Fatalf("attach: exit status %d, want 0; error output:\n%s", st, a.errOut.String())
	}
	assertEachOnce(t, a.out.String(), 30)
	hosts.assertNothingLeft(t)
}

// waitDone waits until the process has printed "done" n times.
func waitDone(t *testing.T, p *proc, n int) {
	t.Helper()
	testutil.EventuallyNil(t, fmt.Sprintf("%d jobs done", n), func() error {
		if k := strings.Count(p.out.String(), "done"); k < n {
			return fmt.Errorf("%d done; error output:\n%s", k, p.errOut.String())
		}
		return nil
	})
}
