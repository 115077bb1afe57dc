package sshlogin

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goherd/herd/internal/testutil"
)

// fakeHerd writes a program that stands for herd work on this machine:
// it notes when it started in log, and runs until stopped.
func fakeHerd(t *testing.T) (herd, log string) {
	t.Helper()
	dir := t.TempDir()
	herd, log = filepath.Join(dir, "herd"), filepath.Join(dir, "log")
	script := "#!/bin/sh\ndate +%s.%N >> " + log + "\nexec sleep 30\n"
	if err := os.WriteFile(herd, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return herd, log
}

// starts returns the start times the fake herds noted.
func starts(t *testing.T, log string) []float64 {
	t.Helper()
	b, _ := os.ReadFile(log)
	var at []float64
	for line := range strings.FieldsSeq(string(b)) {
		f, err := strconv.ParseFloat(line, 64)
		if err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		at = append(at, f)
	}
	return at
}

// --sshdelay: the hosts start one after the other; one not started yet
// when the fleet stops is never started, and Stop does not wait for it.
func TestFleetDelay(t *testing.T) {
	herd, log := fakeHerd(t)
	logins := []Login{{Local: true, Host: ":", Text: ":"}, {Local: true, Host: ":", Text: "1/:"}}
	f, err := Start(logins, Config{Herd: herd, Delay: 100 * time.Millisecond, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "both hosts to start", func() bool { return len(starts(t, log)) == 2 })
	f.Stop()

	herd, log = fakeHerd(t)
	f, err = Start(logins, Config{Herd: herd, Delay: time.Hour, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the first host to start", func() bool { return len(starts(t, log)) >= 1 })
	stopped := make(chan struct{})
	go func() {
		f.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("Stop waited for a host that was to start in an hour")
	}
	if n := len(starts(t, log)); n != 1 {
		t.Errorf("%d hosts started, want 1: the second was to start in an hour", n)
	}
}
