package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestDefaultOptionsOrder(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	xdg := t.TempDir()
	write := func(path, text string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(xdg, "parallel", "config"), "-j 3\n")
	write(filepath.Join(home, ".parallel", "config"), "# a comment\n--tag\n\n-k\n")
	env := map[string]string{"XDG_CONFIG_HOME": xdg, "PARALLEL": "--tagstring 'x y'"}
	getenv := func(k string) string { return env[k] }
	homeDir := func() (string, error) { return home, nil }

	got, err := withDefaultOptions([]string{"run", "-j", "5", "echo"}, getenv, homeDir)
	want := []string{"run", "-j", "3", "--tag", "-k", "--tagstring", "x y", "-j", "5", "echo"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("withDefaultOptions = %q, %v; want %q", got, err, want)
	}
	for _, args := range [][]string{
		{"run", "--plain", "echo"},
		{"work", "--queue", "x"},
		{},
	} {
		if got, err := withDefaultOptions(args, getenv, homeDir); err != nil || !slices.Equal(got, args) {
			t.Errorf("withDefaultOptions(%q) = %q, %v; want them unchanged", args, got, err)
		}
	}
	// -J names profiles to read instead of config, in each folder; a path
	// of its own if it starts with / or ./.
	write(filepath.Join(home, ".parallel", "remote"), "-S box\n")
	write(filepath.Join(xdg, "parallel", "remote"), "-j 2\n")
	abs := filepath.Join(t.TempDir(), "mine")
	write(abs, "--lb\n")
	for _, tc := range []struct{ args, want []string }{
		{[]string{"run", "-J", "remote", "echo"}, []string{"run", "-j", "2", "-S", "box", "--tagstring", "x y", "-J", "remote", "echo"}},
		{[]string{"run", "-kJremote", "echo"}, []string{"run", "-j", "2", "-S", "box", "--tagstring", "x y", "-kJremote", "echo"}},
		{[]string{"run", "--profile=" + abs, "-J", "nosuch", "echo"}, []string{"run", "--lb", "--tagstring", "x y", "--profile=" + abs, "-J", "nosuch", "echo"}},
		{[]string{"run", "echo", "-J", "remote"}, []string{"run", "-j", "3", "--tag", "-k", "--tagstring", "x y", "echo", "-J", "remote"}}, // the command's own
	} {
		if got, err := withDefaultOptions(tc.args, getenv, homeDir); err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("withDefaultOptions(%q) = %q, %v; want %q", tc.args, got, err, tc.want)
		}
	}
	noHome := func() (string, error) { return "", errors.New("no home") }
	env = map[string]string{}
	if got, err := withDefaultOptions([]string{"run", "echo"}, getenv, noHome); err != nil || len(got) != 2 {
		t.Errorf("with no home and no $PARALLEL: %q, %v", got, err)
	}
}
