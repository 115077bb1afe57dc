package run

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ConfigFiles lists GNU parallel's per-user config files, in the order it
// reads them: the file config of each of its folders, or with profiles
// (-J) the files of those names instead; a profile that starts with / or
// ./ is a path of its own. getenv and home read the environment for it.
func ConfigFiles(getenv func(string) string, home func() (string, error), profiles []string) []string {
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
	if len(profiles) == 0 {
		profiles = []string{"config"}
	}
	var files []string
	seen := map[string]bool{}
	for _, p := range profiles {
		if strings.HasPrefix(p, "/") || strings.HasPrefix(p, "./") {
			files = append(files, p)
			continue
		}
		for _, d := range dirs {
			f := filepath.Join(d, p)
			if !seen[f] {
				seen[f] = true
				files = append(files, f)
			}
		}
	}
	return files
}

// ReadConfig reads the options of a config file: its lines split into words
// as a shell would, skipping lines that start with #. A file that does not
// exist has none.
func ReadConfig(file string) ([]string, error) {
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
		w, err := ShellWords(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, i+1, err)
		}
		words = append(words, w...)
	}
	return words, nil
}

// ShellWords splits s into words as GNU parallel does (Perl's
// Text::ParseWords::shellwords): at blanks, with '...' quoting everything
// but \\ and \', "..." quoting everything, and a backslash elsewhere
// quoting the next character. Nothing is expanded.
func ShellWords(s string) ([]string, error) {
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
