// Package command runs one job of herd run: a command line in its own
// process group, stopped as a whole when its context ends.
package command

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Job is a command line to run and where its input and output go.
type Job struct {
	Line   string    // the command line, as a POSIX shell reads it
	Shell  string    // the shell that runs Line; empty means /bin/sh
	Env    []string  // the environment; nil means herd's own
	Stdin  io.Reader // nil means /dev/null
	Stdout io.Writer // nil means discard
	Stderr io.Writer // nil means discard
	Dir    string    // the working folder; empty means herd's

	// TermSeq is what the process group gets when the context ends: each
	// signal in turn, then as long as its wait for the job to end. Nil
	// means DefaultTermSeq. SIGKILL follows the last.
	TermSeq []Term

	// LookPath finds a program on PATH; nil means exec.LookPath. A caller
	// running many jobs can save the search by caching it.
	LookPath func(name string) (string, error)

	// OwnStdin says that Stdin, an *os.File, is the job's alone: it is
	// closed here once the job has it, so that the job is its only
	// reader (a pipe's writer then learns when the job is gone).
	OwnStdin bool

	// Nice, if not 0, makes the job that much nicer than herd (--nice):
	// it starts under nice(1), so that it and all it starts have it from
	// their first instruction.
	Nice int
}

// A Term is a step of a job's termination: a signal, and how long to wait
// after it for the job to end.
type Term struct {
	Signal syscall.Signal `json:"signal"`
	Wait   time.Duration  `json:"wait"`
}

// DefaultTermSeq is GNU parallel's --termseq: TERM,200,TERM,100,TERM,50,
// KILL,25.
var DefaultTermSeq = []Term{
	{syscall.SIGTERM, 200 * time.Millisecond},
	{syscall.SIGTERM, 100 * time.Millisecond},
	{syscall.SIGTERM, 50 * time.Millisecond},
	{syscall.SIGKILL, 25 * time.Millisecond},
}

// Result is how a job ended.
type Result struct {
	Start    time.Time
	Duration time.Duration
	Exit     int  // the exit status; -1 if the job was killed by a signal or never started
	Signal   int  // the signal that killed it, or 0
	Killed   bool // Run killed it: its context ended (a time limit, --halt now, a signal to herd)
	Err      error
}

// Failed reports whether the job did not exit with status 0.
func (r Result) Failed() bool { return r.Exit != 0 || r.Signal != 0 || r.Err != nil }

// Run runs the job and waits for it. The job is the leader of a new
// process group; when ctx ends, the whole group gets the signals of the
// job's TermSeq, then SIGKILL. When the leader exits, anything it left running
// in its group is killed too, so that a job never leaves orphans behind; Run
// returns once the job's output has been read to its end (or, if a process
// that left the group holds it, after outputWait).
func Run(ctx context.Context, j Job) Result {
	cmd := j.command()
	cmd.Dir = j.Dir
	cmd.Env = j.Env
	cmd.Stdin = j.Stdin
	// If herd itself is killed outright, its jobs' shells die with it
	// rather than running on unseen.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// What is left of the job's standard input when it exits is not read.
	cmd.WaitDelay = 100 * time.Millisecond

	res := Result{Start: time.Now(), Exit: -1}
	out, err := newOutputs(cmd, j.Stdout, j.Stderr)
	if err == nil {
		err = cmd.Start()
		out.started()
	}
	if f, ok := j.Stdin.(*os.File); ok && j.OwnStdin {
		f.Close()
	}
	if err != nil {
		out.wait()
		res.Err = err
		res.Exit = 127
		return res
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // always received below

	select {
	case err = <-done:
	case <-ctx.Done():
		res.Killed = true
		err = terminate(pgid, j.TermSeq, done)
	}
	syscall.Kill(-pgid, syscall.SIGKILL) // whatever the job left running
	out.wait()
	res.Duration = time.Since(res.Start)

	if cmd.ProcessState != nil {
		if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			res.Signal = int(st.Signal())
		} else {
			res.Exit = cmd.ProcessState.ExitCode()
		}
	}
	if err != nil {
		if _, exited := errors.AsType[*exec.ExitError](err); !exited && !errors.Is(err, exec.ErrWaitDelay) {
			res.Err = err
		}
	}
	return res
}

// terminate sends the job's process group the steps of seq until the job
// ends (done), then SIGKILL if it has not, and returns how it ended.
func terminate(pgid int, seq []Term, done <-chan error) error {
	if seq == nil {
		seq = DefaultTermSeq
	}
	for _, step := range seq {
		syscall.Kill(-pgid, step.Signal)
		t := time.NewTimer(step.Wait)
		select {
		case err := <-done:
			t.Stop()
			return err
		case <-t.C:
		}
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
	return <-done
}

// command returns the process for the job: the program itself when the
// line is a plain list of words naming a program on PATH, which saves
// starting a shell, and the shell otherwise; under nice(1) with Nice.
func (j Job) command() *exec.Cmd {
	cmd := j.program()
	if j.Nice != 0 {
		// nice(1), as GNU parallel's setpriority, lets go of a niceness it
		// may not set (below 0, without the privilege). Where there is no
		// nice, the job fails to start, and says why.
		return exec.Command("nice", append([]string{"-n", strconv.Itoa(j.Nice), cmd.Path}, cmd.Args[1:]...)...)
	}
	return cmd
}

func (j Job) program() *exec.Cmd {
	if args, ok := Words(j.Line); ok && len(args) > 0 && !exportedFunction(j.Env, args[0]) {
		lookPath := j.LookPath
		if lookPath == nil {
			lookPath = exec.LookPath
		}
		if path, err := lookPath(args[0]); err == nil {
			cmd := exec.Command(path, args[1:]...)
			cmd.Args[0] = args[0]
			return cmd
		}
	}
	shell := j.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	return exec.Command(shell, "-c", j.Line)
}

// exportedFunction reports whether env (nil: herd's own) holds a bash
// function of that name (export -f), which the shell runs rather than the
// program of that name.
func exportedFunction(env []string, name string) bool {
	if env == nil {
		env = os.Environ()
	}
	prefix := "BASH_FUNC_" + name + "%%="
	for _, kv := range env {
		if strings.HasPrefix(kv, prefix) {
			return true
		}
	}
	return false
}

// MaxArg is the longest argument Linux passes to a program
// (MAX_ARG_STRLEN, less the NUL that ends it).
const MaxArg = 32*4096 - 1

// TooLong reports whether line cannot be started on this system: a word of
// a plain command line, or a shell's whole line, is longer than the system
// passes in one argument. It returns the length that is too long.
func TooLong(line string) (int, bool) {
	if runtime.GOOS != "linux" {
		return 0, false // the limit is on the whole argument list, checked when the job starts
	}
	if words, ok := Words(line); ok {
		for _, w := range words {
			if len(w) > MaxArg {
				return len(w), true
			}
		}
		return 0, false
	}
	return len(line), len(line) > MaxArg
}

// Check reports whether the shell can parse line, without running it.
func Check(shell, line string) error {
	if _, ok := Words(line); ok {
		return nil
	}
	if shell == "" {
		shell = "/bin/sh"
	}
	out, err := exec.Command(shell, "-n", "-c", line).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			msg = err.Error()
		}
		return errors.New(msg)
	}
	return nil
}

// Words splits line into words if a POSIX shell would read it as nothing
// but a simple command: words of safe characters and single-quoted
// strings, separated by spaces. It reports false for anything the shell
// would interpret: variables, globs, redirections, operators, other
// quoting, assignments, keywords or tildes.
func Words(line string) ([]string, bool) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, false
			}
			w.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case safe(c, len(words) == 0 && !inWord):
			w.WriteByte(c)
			inWord = true
		case c == '=' && len(words) > 0:
			w.WriteByte(c)
			inWord = true
		default:
			return nil, false
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	if len(words) > 0 && keywords[words[0]] {
		return nil, false
	}
	return words, true
}

// safe reports whether c means itself to the shell. A word that starts
// with it must not start a tilde expansion or a comment either.
func safe(c byte, first bool) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.IndexByte("-_./,:+@%", c) >= 0 && !(first && c == '%')
}

var keywords = map[string]bool{
	"if": true, "then": true, "else": true, "elif": true, "fi": true, "case": true, "esac": true,
	"for": true, "while": true, "until": true, "do": true, "done": true, "in": true, "function": true,
	"select": true, "time": true, "!": true, "[[": true, "]]": true, "{": true, "}": true,
}

// outputWait is how long a job's output may stay open once the job and its
// process group are gone: only a process that left the group (setsid) can
// hold it then.
const outputWait = 10 * time.Second

// outputs are the pipes of a job's output that is not a file: read here to
// their end, rather than by exec.Cmd, whose WaitDelay would close them a
// moment after the job exits and drop what was still in them whenever the
// reader was slow (a busy machine, a writer that blocks).
type outputs struct {
	writers []*os.File // the pipes' writing ends, the job's
	readers []*os.File
	copies  sync.WaitGroup
}

// newOutputs sets cmd's Stdout and Stderr to stdout and stderr, through
// pipes of this package's for writers that are not files; nil discards.
func newOutputs(cmd *exec.Cmd, stdout, stderr io.Writer) (*outputs, error) {
	o := &outputs{}
	pipe := func(w io.Writer) (io.Writer, error) {
		if w == nil {
			return nil, nil
		}
		if f, ok := w.(*os.File); ok {
			return f, nil
		}
		r, pw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		o.writers, o.readers = append(o.writers, pw), append(o.readers, r)
		o.copies.Go(func() { io.Copy(w, r) })
		return pw, nil
	}
	var err error
	if cmd.Stdout, err = pipe(stdout); err != nil {
		return o, err
	}
	if stderr == stdout && stdout != nil {
		cmd.Stderr = cmd.Stdout // one pipe, as exec.Cmd makes for one writer
		return o, nil
	}
	cmd.Stderr, err = pipe(stderr)
	return o, err
}

// started closes this process's copy of the pipes' writing ends, once the
// job has its own (or failed to start).
func (o *outputs) started() {
	for _, w := range o.writers {
		w.Close()
	}
}

// wait waits until the job's output has been read to its end, for up to
// outputWait.
func (o *outputs) wait() {
	o.started() // if the job did not start
	if len(o.readers) == 0 {
		return // the output goes to files: nothing to read here
	}
	done := make(chan struct{})
	go func() { // ends when the copies do, which the closes below ensure
		o.copies.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(outputWait):
	}
	for _, r := range o.readers {
		r.Close()
	}
	<-done
}
