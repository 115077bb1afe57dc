package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// withDefaultOptions puts the default options of herd run in front of its
// own, where GNU parallel takes them from: the config file of each of its
// folders that exists ($PARALLEL_HOME, $XDG_CONFIG_HOME/parallel,
// ~/.parallel), a line of options at a time, then $PARALLEL. Options given
// later win, so those on the command line win over both. --plain on the
// command line leaves them out. args are herd's arguments, and are returned
// unchanged for any other command.
func withDefaultOptions(args []string, getenv func(string) string, home func() (string, error)) ([]string, error) {
	if len(args) == 0 || args[0] != "run" {
		return args, nil
	}
	var files []string
	for _, file := range configFiles(getenv, home) {
		if _, err := os.Stat(file); err == nil {
			files = append(files, file)
		}
	}
	env := getenv("PARALLEL")
	if len(files) == 0 && env == "" || givesPlain(args[1:]) {
		return args, nil // nothing to read, or not to be read: the usual case costs no parse
	}
	var defaults []string
	for _, file := range files {
		words, err := readConfig(file)
		if err != nil {
			return nil, err
		}
		if err := checkOptions(file, words); err != nil {
			return nil, err
		}
		defaults = append(defaults, words...)
	}
	if env != "" {
		words, err := shellWords(env)
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

// givesPlain reports whether herd run's options in args include --plain.
func givesPlain(args []string) bool {
	cmd := newRunCommand(context.Background(), nil)
	f := cmd.Flags()
	_ = f.Parse(args) // the real parse reports errors
	return f.Lookup("plain").Changed
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

// configFiles lists GNU parallel's per-user config files, in the order it
// reads them.
func configFiles(getenv func(string) string, home func() (string, error)) []string {
	var dirs []string
	if d := getenv("PARALLEL_HOME"); d != "" {
		dirs = append(dirs, d)
	}
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		dirs = append(dirs, filepath.Join(d, "parallel"))
	}
	if h, err := home(); err == nil {
		dirs = append(dirs, filepath.Join(h, ".parallel"))
	}
	var files []string
	seen := map[string]bool{}
	for _, d := range dirs {
		f := filepath.Join(d, "config")
		if !seen[f] {
			seen[f] = true
			files = append(files, f)
		}
	}
	return files
}

// readConfig reads the options of a config file: its lines split into words
// as a shell would, skipping lines that start with #. A file that does not
// exist has none.
func readConfig(file string) ([]string, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var words []string
	for i, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		w, err := shellWords(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, i+1, err)
		}
		words = append(words, w...)
	}
	return words, nil
}

// shellWords splits s into words as GNU parallel does (Perl's
// Text::ParseWords::shellwords): at blanks, with '...' quoting everything
// but \\ and \', "..." quoting everything, and a backslash elsewhere
// quoting the next character. Nothing is expanded.
func shellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
			continue
		case c == '\\':
			if i+1 < len(s) {
				i++
				w.WriteByte(s[i])
			}
		case c == '\'' || c == '"':
			end := -1
			for j := i + 1; j < len(s); j++ {
				if s[j] == '\\' && j+1 < len(s) && (c == '"' || s[j+1] == '\\' || s[j+1] == '\'') {
					w.WriteByte(s[j+1])
					j++
					continue
				}
				if s[j] == c {
					end = j
					break
				}
				w.WriteByte(s[j])
			}
			if end < 0 {
				return nil, fmt.Errorf("unterminated %c quote in %q", c, s)
			}
			i = end
		default:
			w.WriteByte(c)
		}
		inWord = true
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}
