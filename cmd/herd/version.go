package main

import (
	"fmt"

	"github.com/goherd/herd/internal/buildinfo"
	"github.com/spf13/cobra"
)

// version is the release this binary is, when a release build stamps it:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/herd
//
// Otherwise it is read from the build information: the module's version
// for go install …@version, a pseudo-version for go build in a clone.
var version string

// buildVersion describes this build as herd version prints it.
func buildVersion() string { return buildinfo.Describe(version) }

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
