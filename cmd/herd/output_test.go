package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goherd/herd/internal/run"
	"github.com/goherd/herd/internal/testutil"
)

// -k with --line-buffer, as GNU parallel has it: the oldest job's lines
// come as it writes them, while it runs; a later job's wait until the
// jobs before it are done.
func TestKeepOrderLineBufferIsLive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startProc(t, dir, nil, "run", "-k", "--line-buffer", "-j2", "--joblog", "log.tsv",
		`if [ {} = 1 ]; then echo first; while [ ! -e go ]; do sleep 0.01; done; echo last; else echo second; fi`, ":::", "1", "2")
	testutil.Eventually(t, "job 1's first line while it runs", func() bool { return strings.Contains(p.out.String(), "first") })
	// herd logs job 2 once it has ended and herd has its output: the
	// line must wait behind job 1 still.
	testutil.Eventually(t, "job 2 to end", func() bool {
		rows, _, _ := run.ReadJoblog(filepath.Join(dir, "log.tsv"))
		return len(rows) == 1
	})
	if out := p.out.String(); out != "first\n" {
		t.Errorf("while job 1 runs, the output is %q, want only its first line", out)
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if st := p.status(t); st != 0 || p.out.String() != "first\nlast\nsecond\n" {
		t.Errorf("exit status %d, output %q; want 0 and first, last, second", st, p.out.String())
	}
}
