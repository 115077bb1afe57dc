// Package buildinfo says which herd a binary is: its version, the commit
// it was built from, the Go release and the NATS server linked in, as herd
// version prints them, and whether it is a release that a host's herd can
// be taken for.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Describe describes this build as herd version prints it, a fact a
// line: herd's version (stamped, if a release build stamped one, else the
// module's version from the build information, else "(devel)"), the commit
// it was built from, the NATS server it embeds and the Go release. Each line
// but the first and last is there only if the build recorded it.
func Describe(stamped string) string {
	v := stamped
	var lines []string
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		if rev := settings["vcs.revision"]; rev != "" {
			line := "commit " + rev
			if t := settings["vcs.time"]; t != "" {
				line += " (" + t + ")"
			}
			if settings["vcs.modified"] == "true" {
				line += ", with uncommitted changes"
			}
			lines = append(lines, line)
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/nats-io/nats-server/v2" {
				lines = append(lines, "nats-server "+d.Version)
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	lines = append([]string{"herd " + v}, lines...)
	lines = append(lines, fmt.Sprintf("%s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH))
	return strings.Join(lines, "\n") + "\n"
}

// Version is herd's version alone: v1.2.3, a pseudo-version, or (devel).
func Version(stamped string) string {
	first, _, _ := strings.Cut(Describe(stamped), "\n")
	return strings.TrimPrefix(first, "herd ")
}

// Release is the first line of Describe for a release build: a herd on a
// host's PATH that prints the same is this one. A build between releases
// has none.
func Release(stamped string) string {
	v, _, _ := strings.Cut(Describe(stamped), "\n")
	if !strings.HasPrefix(v, "herd v") || strings.Contains(v, "devel") || strings.Contains(v, "dirty") {
		return ""
	}
	return v
}
