package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version is the release this binary is, when a release build stamps it:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/herd
//
// Otherwise it is read from the build information: the module's version
// for go install …@version, a pseudo-version for go build in a clone.
var version string

// buildVersion describes this build as herd version prints it: herd's
// version, the commit it was built from, the Go release and the NATS
// server linked in. Each line is there only if the build recorded it.
func buildVersion() string {
	v := version
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

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print herd's version, the commit and Go release it was built with, and the NATS server it embeds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), buildVersion())
			return err
		},
	}
}
