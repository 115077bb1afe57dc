package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/goherd/herd/internal/testutil"
	"github.com/rogpeppe/go-internal/testscript"
)

// realHome is the home folder the tests were started with, for the tests
// that run the go command, whose caches live there.
var realHome = os.Getenv("HOME")

func TestMain(m *testing.M) {
	testutil.QuickExit()
	// When testscript runs this binary as herd, the script sets its
	// environment; otherwise these are the tests, which must not see the
	// developer's default options of herd run.
	if filepath.Base(os.Args[0]) != "herd" {
		isolate()
		// The tests mostly wait for the processes and servers they start:
		// four at a time keep two cores busy (with -race the package took
		// 560s two at a time, go test's default there, and 250s at four).
		testutil.Parallel(4)
	}
	testscript.Main(m, map[string]func(){
		"herd": main,
	})
}

// isolate hides what herd run reads default options from, as GNU parallel
// does (the environment and the home folder), and the data folder's.
func isolate() {
	for _, v := range []string{"PARALLEL", "PARALLEL_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"} {
		os.Unsetenv(v)
	}
	os.Setenv("HOME", filepath.Join(os.TempDir(), "herd-tests-have-no-home"))
}

// TestScripts runs the end-to-end scripts in testdata/script: each is a
// shell-like session that runs the real herd binary on real files.
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("SHELL", "/bin/sh")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){"status": cmdStatus},
	})
}

// cmdStatus is the scripts' command "status N COMMAND [ARGS...]": it runs
// the command, as exec does, and checks that it exits with status N.
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status N COMMAND [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("status %q: want a number", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		exit, ok := errors.AsType[*exec.ExitError](err)
		if !ok {
			ts.Fatalf("%s: %v", args[1], err)
		}
		got = exit.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// herdBinary is the path of a herd binary for tests that run it directly:
// the test binary itself, which testscript.Main turns into herd when it is
// run under that name.
func herdBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := dir + "/herd"
	if err := os.Link(os.Args[0], path); err != nil {
		if err := os.Symlink(os.Args[0], path); err != nil {
			t.Fatal(err)
		}
	}
	return path
}
