package testutil

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// No binary links the tests' helpers.
func TestNotInBinaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/goherd/herd/cmd/herd").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for dep := range strings.Lines(string(out)) {
		if strings.TrimSpace(dep) == "github.com/goherd/herd/internal/testutil" {
			t.Errorf("cmd/herd links %s", strings.TrimSpace(dep))
		}
	}
}

// Leaked sees a goroutine that is still running, and one that ended.
func TestLeaked(t *testing.T) {
	started, stop, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		leakyWaiter(started, stop)
	}()
	<-started
	if got := Leaked("testutil.leakyWaiter"); !strings.Contains(got, "leakyWaiter") {
		t.Errorf("Leaked missed a running goroutine: %q", got)
	}
	close(stop)
	<-done
	if got := Leaked("testutil.leakyWaiter"); got != "" {
		t.Errorf("Leaked reports a goroutine that ended:\n%s", got)
	}
}

func leakyWaiter(started chan<- struct{}, stop <-chan struct{}) {
	close(started)
	<-stop
}

func TestEventuallyWaitsForTheState(t *testing.T) {
	calls := 0
	Eventually(t, "the third call", func() bool { calls++; return calls == 3 })
	if calls != 3 {
		t.Errorf("cond called %d times, want 3", calls)
	}
	errs := []error{errors.New("refused"), nil}
	EventuallyNil(t, "a nil error", func() error { err := errs[0]; errs = errs[1:]; return err })
	if len(errs) != 0 {
		t.Errorf("f called until %d errors were left, want 0", len(errs))
	}
}

// Parallel sets -parallel when the command line does not, and leaves it
// alone when it does.
func TestParallel(t *testing.T) {
	f := flag.Lookup("test.parallel")
	was := f.Value.String()
	defer f.Value.Set(was)
	setByUser := false
	flag.Visit(func(f *flag.Flag) { setByUser = setByUser || f.Name == "test.parallel" })

	Parallel(7)
	want := "7"
	if setByUser {
		want = was
	}
	if got := f.Value.String(); got != want {
		t.Errorf("-parallel is %s after Parallel(7), want %s", got, want)
	}
}

// A Pipe collects a process's output; when the process exits leaving a
// child that holds its output, End names the child and kills it rather than
// waiting for it; a process that leaves nothing behind ends at once.
func TestPipeNamesWhatIsLeft(t *testing.T) {
	for _, c := range []struct {
		script string
		left   bool
	}{
		{"echo hi", false},
		{"sleep 300 & echo hi", true},
	} {
		out, err := NewPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sh", "-c", c.script)
		cmd.Stdout = out.File()
		err = cmd.Start()
		out.Started()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		left := out.End(200 * time.Millisecond)
		if out.String() != "hi\n" {
			t.Errorf("%q: the pipe holds %q, want what the shell printed", c.script, out.String())
		}
		if !c.left {
			if left != nil {
				t.Errorf("%q: End says %q were left, want nothing", c.script, left)
			}
			continue
		}
		if len(left) != 1 || !strings.Contains(left[0], "sleep 300") {
			t.Fatalf("%q: End says %q were left, want the sleep", c.script, left)
		}
		pid, _ := strconv.Atoi(strings.SplitN(left[0], ":", 2)[0])
		Eventually(t, "the child left behind to be killed", func() bool {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			return err != nil || strings.Contains(string(b), ") Z ") // gone, or a zombie of init's
		})
	}
}
