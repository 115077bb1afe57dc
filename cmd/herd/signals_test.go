package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goherd/herd/internal/run"
	"github.com/goherd/herd/internal/testutil"
)

// started is a herd run under test, as a real process, in a folder of its
// own.
type started struct {
	*proc
	dir string
}

func startHerd(t *testing.T, args ...string) *started {
	t.Helper()
	dir := t.TempDir()
	return &started{proc: startProc(t, dir, nil, args...), dir: dir}
}

// waitFor waits until every file exists, failing after a few seconds.
func (s *started) waitFor(t *testing.T, files ...string) {
	t.Helper()
	waitFiles(t, s.dir, files...)
}

// status waits for herd to exit and returns its exit status.
func (s *started) status(t *testing.T) int {
	t.Helper()
	return s.proc.status(t)
}

func (s *started) running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// readPid reads the pid a job wrote to a file.
func (s *started) readPid(t *testing.T, name string) int {
	t.Helper()
	var pid int
	// The shell makes the file before it writes the pid in it.
	testutil.EventuallyNil(t, "a pid in "+name, func() error {
		b, err := os.ReadFile(filepath.Join(s.dir, name))
		if err == nil {
			pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		return err
	})
	return pid
}

// groupMembers lists the live (not zombie) processes of process group pgid.
func groupMembers(pgid int) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The command name, in parentheses, may hold spaces: fields
		// start after its closing parenthesis.
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 2 && fields[0] != "Z" && fields[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// assertGroupGone fails unless process group pgid empties: herd killed
// every process of the job (what is left then is killed, not to outlive
// the test).
func assertGroupGone(t *testing.T, pgid int) {
	t.Helper()
	t.Cleanup(func() {
		for _, pid := range groupMembers(pgid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	testutil.Eventually(t, fmt.Sprintf("the processes of job group %d to end", pgid), func() bool {
		return len(groupMembers(pgid)) == 0
	})
}

func logRows(t *testing.T, path string) map[int]run.LogRow {
	t.Helper()
	rows, _, err := run.ReadJoblog(path)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// Ctrl-C kills every process of every running job, grandchildren that
// ignore SIGTERM included, within a second, and starts no new job, as GNU
// parallel's --termseq does.
func TestInterruptKills(t *testing.T) {
	t.Parallel()
	// Each job starts a grandchild that ignores SIGTERM, in the job's group.
	job := `sh -c 'trap "" TERM; sleep 30' & echo $$ > pid.{}; wait`
	s := startHerd(t, "run", "-j2", "--joblog", "log.tsv", job, ":::", "1", "2", "3")
	s.waitFor(t, "pid.1", "pid.2")
	groups := []int{s.readPid(t, "pid.1"), s.readPid(t, "pid.2")}

	s.cmd.Process.Signal(syscall.SIGINT)
	if st := s.status(t); st != 128+int(syscall.SIGINT) {
		t.Errorf("exit status %d, want %d", st, 128+int(syscall.SIGINT))
	}
	for _, g := range groups {
		assertGroupGone(t, g)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "pid.3")); err == nil {
		t.Errorf("job 3 started after SIGINT")
	}
	rows := logRows(t, filepath.Join(s.dir, "log.tsv"))
	if len(rows) != 2 || rows[1].Signal == 0 || rows[2].Signal == 0 {
		t.Errorf("job log rows = %+v, want rows for jobs 1 and 2, killed by a signal", rows)
	}
}

// SIGTERM kills too, with the signals of --termseq in turn: a job that
// ignores the first gets the next.
func TestTerminateKills(t *testing.T) {
	t.Parallel()
	s := startHerd(t, "run", "-j2", "--termseq", "USR1,100,TERM,100", "trap '' USR1; echo $$ > pid.{}; sleep 30", ":::", "1", "2")
	s.waitFor(t, "pid.1", "pid.2")
	start := time.Now()
	s.cmd.Process.Signal(syscall.SIGTERM)
	if st := s.status(t); st != 128+int(syscall.SIGTERM) {
		t.Errorf("exit status %d, want %d", st, 128+int(syscall.SIGTERM))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the jobs took %v to die", d)
	}
	assertGroupGone(t, s.readPid(t, "pid.1"))
	assertGroupGone(t, s.readPid(t, "pid.2"))
}

// SIGHUP finishes the running jobs and starts no new ones.
func TestHangupFinishesRunningJobs(t *testing.T) {
	t.Parallel()
	s := startHerd(t, "run", "-j2", "--joblog", "log.tsv", "touch pid.{}; sleep 0.5; echo done {}", ":::", "1", "2", "3", "4")
	s.waitFor(t, "pid.1", "pid.2")
	s.cmd.Process.Signal(syscall.SIGHUP)
	if st := s.status(t); st != 128+int(syscall.SIGHUP) {
		t.Errorf("exit status %d, want %d", st, 128+int(syscall.SIGHUP))
	}
	lines := strings.Fields(strings.ReplaceAll(s.out.String(), "done ", "done-"))
	slices.Sort(lines)
	if !slices.Equal(lines, []string{"done-1", "done-2"}) {
		t.Errorf("output %q, want the two running jobs to finish", s.out.String())
	}
	rows := logRows(t, filepath.Join(s.dir, "log.tsv"))
	if len(rows) != 2 || rows[1].Failed() || rows[2].Failed() {
		t.Errorf("job log rows = %+v, want jobs 1 and 2, succeeded", rows)
	}
}

// After herd is killed outright, --resume runs exactly the jobs that have
// no row in the job log.
func TestKill9ThenResume(t *testing.T) {
	t.Parallel()
	var inputs []string
	for i := 1; i <= 40; i++ {
		inputs = append(inputs, strconv.Itoa(i))
	}
	args := append([]string{"run", "-j4", "--joblog", "log.tsv", "sleep 0.05; echo {}", ":::"}, inputs...)
	s := startHerd(t, args...)
	logPath := filepath.Join(s.dir, "log.tsv")
	testutil.Eventually(t, "herd to log 8 jobs", func() bool {
		rows, _, _ := run.ReadJoblog(logPath)
		if len(rows) < 8 && !s.running() {
			t.Fatal("herd ended before it logged 8 jobs")
		}
		return len(rows) >= 8
	})
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.status(t)
	before := logRows(t, logPath)
	if len(before) == len(inputs) {
		t.Fatal("herd finished before it could be killed: the test needs slower jobs")
	}

	resume := exec.Command(herdBinary(t), append([]string{"run", "-j4", "--joblog", "log.tsv", "--resume", "sleep 0.05; echo {}", ":::"}, inputs...)...)
	resume.Dir = s.dir
	out, err := resume.Output()
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	var ran, want []string
	ran = strings.Fields(string(out))
	for _, in := range inputs {
		seq, _ := strconv.Atoi(in)
		if _, done := before[seq]; !done {
			want = append(want, in)
		}
	}
	slices.Sort(ran)
	slices.Sort(want)
	if !slices.Equal(ran, want) {
		t.Errorf("resume ran %v, want exactly the jobs missing from the job log %v", ran, want)
	}
	if after := logRows(t, logPath); len(after) != len(inputs) {
		t.Errorf("job log has %d jobs after resuming, want %d", len(after), len(inputs))
	}
}
