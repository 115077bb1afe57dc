package testutil

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Pipe is the output of a process under test, read into a [Buffer]. Unlike
// a Buffer given to exec.Cmd, it lets the test notice what a process leaves
// behind: a process it started that outlives it still holds the pipe, and
// exec.Cmd.Wait would wait for that process for ever.
type Pipe struct {
	Buffer
	w, r *os.File
	ino  uint64
	done chan struct{}
}

// NewPipe returns a pipe whose writing end, [Pipe.File], is for a command's
// Stdout or Stderr. Call [Pipe.Started] once the command has started, or
// [Pipe.Close] if it did not.
func NewPipe() (*Pipe, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(w.Fd()), &st); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	p := &Pipe{w: w, r: r, ino: st.Ino, done: make(chan struct{})}
	go func() { // ends when the pipe does, or when End closes r
		io.Copy(&p.Buffer, r)
		close(p.done)
	}()
	return p, nil
}

// File is the pipe's writing end.
func (p *Pipe) File() *os.File { return p.w }

// Started closes the test's own copy of the writing end: from now on the
// pipe ends when every process holding it has exited or closed it.
func (p *Pipe) Started() { p.w.Close() }

// End waits up to d for the pipe to end, once the process it was given to
// has exited. If processes still hold it then, End kills them, closes the
// pipe, and returns what they were (pid and command line): what the
// process left running.
func (p *Pipe) End(d time.Duration) (left []string) {
	p.w.Close()
	select {
	case <-p.done:
		return nil
	case <-time.After(d):
	}
	want := "pipe:[" + strconv.FormatUint(p.ino, 10) + "]"
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	seen := map[string]bool{}
	for _, fd := range fds {
		if link, err := os.Readlink(fd); err != nil || link != want {
			continue
		}
		proc := filepath.Dir(filepath.Dir(fd))
		if seen[proc] {
			continue
		}
		seen[proc] = true
		pid, _ := strconv.Atoi(filepath.Base(proc))
		if pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(proc, "cmdline"))
		left = append(left, fmt.Sprintf("%d: %s", pid, strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))))
		syscall.Kill(pid, syscall.SIGKILL)
	}
	p.r.Close()
	<-p.done
	return left
}
