package run

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/goherd/herd/internal/replace"
)

// Workdir is --workdir: the folder the jobs run in, made if need be. The
// zero Workdir is herd's folder (on a host, the worker's: its login
// folder).
type Workdir struct {
	// Dir names the folder, expanded for each job (replacement strings
	// are allowed). A relative one is relative to herd's folder, or on a
	// host to the worker's.
	Dir *replace.Template
	// Here (".") is herd's folder; on a host, the folder of the same path
	// relative to the home folder, if herd's is in the home folder.
	Here bool
	// Temp ("...") gives each job a new folder under ~/.parallel/tmp,
	// removed after the job if it is empty, or with --cleanup.
	Temp bool
}

// tempWorkdir names Temp's folders; homeWorkdir starts a name relative to
// the home folder.
const (
	tempWorkdir = "..."
	homeWorkdir = "~/"
)

// Name names the folder of a job: "" for herd's own; tempWorkdir for a new
// one; a name starting with homeWorkdir for one relative to the home
// folder. Remote says the job runs on a worker (--queue, -S).
func (w Workdir) Name(j Job, remote bool) string {
	switch {
	case w.Temp:
		return tempWorkdir
	case w.Here && !remote:
		return ""
	case w.Here:
		wd, err := os.Getwd()
		if err != nil {
			return ""
		}
		if home, err := os.UserHomeDir(); err == nil {
			if rel, err := filepath.Rel(home, wd); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
				return homeWorkdir + rel
			}
		}
		return wd
	case w.Dir != nil:
		return w.Dir.Expand(j.Args, j.Seq, 0, true)
	}
	return ""
}

// EnterWorkdir makes the folder that Name named for job seq, and returns
// it, with what to call once the job is done: it removes a folder of
// Temp's, if the job left it empty or cleanup is set.
func EnterWorkdir(name string, seq int, cleanup bool) (dir string, leave func(), err error) {
	leave = func() {}
	switch {
	case name == "":
		return "", leave, nil
	case name == tempWorkdir:
		home, err := os.UserHomeDir()
		if err != nil {
			return "", leave, fmt.Errorf("--workdir ...: %w", err)
		}
		host, _ := os.Hostname()
		dir = filepath.Join(home, ".parallel", "tmp", host+"-"+strconv.Itoa(os.Getpid())+"-"+strconv.Itoa(seq))
		leave = func() {
			if cleanup {
				os.RemoveAll(dir)
			} else {
				os.Remove(dir) // only if empty
			}
		}
	case strings.HasPrefix(name, homeWorkdir):
		home, err := os.UserHomeDir()
		if err != nil {
			return "", leave, fmt.Errorf("--workdir %s: %w", name, err)
		}
		dir = filepath.Join(home, strings.TrimPrefix(name, homeWorkdir))
	default:
		dir = name
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", func() {}, fmt.Errorf("--workdir: %w", err)
	}
	return dir, leave, nil
}
