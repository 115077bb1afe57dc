package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/goherd/herd/internal/run"
)

// withDefaultOptions puts the default options of herd run in front of its
// own, where GNU parallel takes them from: the config file of each of its
// folders that exists ($PARALLEL_HOME, $XDG_CONFIG_HOME/parallel,
// ~/.parallel), or the profiles named with -J instead, a line of options at
// a time, then $PARALLEL. Options given later win, so those on the command
// line win over both. --plain on the command line leaves them out. args are
// herd's arguments, and are returned unchanged for any other command.
func withDefaultOptions(args []string, getenv func(string) string, home func() (string, error)) ([]string, error) {
	if len(args) == 0 || args[0] != "run" {
		return args, nil
	}
	plain, profiles := readFirst(args[1:])
	if plain {
		return args, nil
	}
	var files []string
	for _, file := range run.ConfigFiles(getenv, home, profiles) {
		if _, err := os.Stat(file); err == nil {
			files = append(files, file)
		}
	}
	env := getenv("PARALLEL")
	if len(files) == 0 && env == "" {
		return args, nil // nothing to read
	}
	var defaults []string
	for _, file := range files {
		words, err := run.ReadConfig(file)
		if err != nil {
			return nil, err
		}
		if err := checkOptions(file, words); err != nil {
			return nil, err
		}
		defaults = append(defaults, words...)
	}
	if env != "" {
		words, err := run.ShellWords(env)
		if err != nil {
			return nil, fmt.Errorf("$PARALLEL: %w", err)
		}
		if err := checkOptions("$PARALLEL", words); err != nil {
			return nil, err
		}
		defaults = append(defaults, words...)
	}
	if len(defaults) == 0 {
		return args, nil
	}
	return append(append([]string{"run"}, defaults...), args[1:]...), nil
}

// readFirst reads the options of herd run in args that say where its
// default options come from: --plain, and the profiles of -J.
func readFirst(args []string) (plain bool, profiles []string) {
	mayName := func(a string) bool { // --plain, --profile (or the shortest prefix that names it), -J or a bundle with it
		return strings.HasPrefix(a, "--pla") || strings.HasPrefix(a, "--prof") || !strings.HasPrefix(a, "--") && strings.HasPrefix(a, "-") && strings.Contains(a, "J")
	}
	if !slices.ContainsFunc(args, mayName) {
		return false, nil // the usual case costs no parse
	}
	f := newRunCommand(context.Background(), nil).Flags()
	_ = f.Parse(args) // the real parse reports errors
	profiles, _ = f.GetStringArray("profile")
	return f.Lookup("plain").Changed, profiles
}

// checkOptions parses words as herd run's options, to say where a bad one
// comes from.
func checkOptions(source string, words []string) error {
	f := newRunCommand(context.Background(), nil).Flags()
	if err := f.Parse(words); err != nil {
		return fmt.Errorf("%s: %w (herd run reads default options there, as GNU parallel does; --plain ignores them)", source, err)
	}
	if rest := f.Args(); len(rest) > 0 {
		return fmt.Errorf("%s: %q is not an option: only options are taken from there", source, rest[0])
	}
	return nil
}
