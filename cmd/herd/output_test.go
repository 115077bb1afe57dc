package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// -k with --line-buffer, as GNU parallel has it: the oldest job's lines
// come as it writes them, while it runs; a later job's wait until the
// jobs before it are done.
func TestKeepOrderLineBufferIsLive(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, dir, nil, "run", "-k", "--line-buffer", "-j2",
		`if [ {} = 1 ]; then echo first; while [ ! -e go ]; do sleep 0.01; done; echo last; else echo second; fi`, ":::", "1", "2")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.out.String(), "first") {
		if time.Now().After(deadline) {
			t.Fatalf("job 1's first line did not come while it ran; output %q", p.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // job 2 is done by now: its line must wait
	if out := p.out.String(); out != "first\n" {
		t.Errorf("while job 1 runs, the output is %q, want only its first line", out)
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if st := p.status(t, 30*time.Second); st != 0 || p.out.String() != "first\nlast\nsecond\n" {
		t.Errorf("exit status %d, output %q; want 0 and first, last, second", st, p.out.String())
	}
}
