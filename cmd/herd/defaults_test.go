package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestShellWords(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  -k   --tag\t", []string{"-k", "--tag"}},
		{`--tagstring 'a b'`, []string{"--tagstring", "a b"}},
		{`--tagstring "a b" -j2`, []string{"--tagstring", "a b", "-j2"}},
		{`a\ b`, []string{"a b"}},
		{`'it\'s' "say \"hi\"" 'back\\slash' 'no\escape'`, []string{"it's", `say "hi"`, `back\slash`, `no\escape`}},
		{`x'y'"z"`, []string{"xyz"}},
		{`''`, []string{""}},
		{`$HOME ~ *`, []string{"$HOME", "~", "*"}}, // nothing is expanded
	} {
		got, err := shellWords(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("shellWords(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`'open`, `"open`, `a "b`} {
		if got, err := shellWords(bad); err == nil {
			t.Errorf("shellWords(%q) = %q, want an error", bad, got)
		}
	}
}

// Any word survives being single-quoted the way a user would write it.
func FuzzShellWords(f *testing.F) {
	for _, s := range []string{"", "a b", "it's", `back\slash`, "tab\there", `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, word string) {
		quoted := "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(word) + "'"
		got, err := shellWords("-x " + quoted + " -y")
		if err != nil || !slices.Equal(got, []string{"-x", word, "-y"}) {
			t.Fatalf("shellWords(%q) = %q, %v", quoted, got, err)
		}
		shellWords(word) // never panics, whatever the input
	})
}

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
