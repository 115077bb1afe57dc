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
	noHome := func() (string, error) { return "", errors.New("no home") }
	env = map[string]string{}
	if got, err := withDefaultOptions([]string{"run", "echo"}, getenv, noHome); err != nil || len(got) != 2 {
		t.Errorf("with no home and no $PARALLEL: %q, %v", got, err)
	}
}
