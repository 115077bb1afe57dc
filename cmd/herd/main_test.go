package main

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"herd": main,
	})
}

// TestScripts runs the end-to-end scripts in testdata/script: each is a
// shell-like session that runs the real herd binary on real files.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("SHELL", "/bin/sh")
			return nil
		},
	})
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
