package testutil

import (
	"errors"
	"flag"
	"os/exec"
	"strings"
	"testing"
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
