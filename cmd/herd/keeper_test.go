package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The folders of runs whose keeper stopped over a week ago go when a new
// run starts; those of runs kept or recent stay.
func TestForgetOldRuns(t *testing.T) {
	runs := t.TempDir()
	old := time.Now().Add(-8 * 24 * time.Hour)
	mk := func(name string, at time.Time, pid int) {
		dir := filepath.Join(runs, name)
		if err := os.MkdirAll(filepath.Join(dir, "queue"), 0o700); err != nil {
			t.Fatal(err)
		}
		if pid != 0 {
			os.WriteFile(filepath.Join(dir, "pid"), []byte(strconv.Itoa(pid)), 0o600)
		}
		os.WriteFile(filepath.Join(dir, "log"), nil, 0o600)
		for _, p := range []string{filepath.Join(dir, "log"), filepath.Join(dir, "pid"), dir} {
			os.Chtimes(p, at, at)
		}
	}
	mk("old", old, 0)
	mk("recent", time.Now(), 0)
	mk("old-but-kept", old, os.Getpid()) // its keeper runs
	forgetOldRuns(runs)
	for name, want := range map[string]bool{"old": false, "recent": true, "old-but-kept": true} {
		if _, err := os.Stat(filepath.Join(runs, name)); (err == nil) != want {
			t.Errorf("run folder %s kept: %v, want %v", name, err == nil, want)
		}
	}
}
