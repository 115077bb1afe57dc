package main

import (
	"os"

	"github.com/goherd/herd/internal/keeper"
	"github.com/spf13/cobra"
)

// newKeeperCommand returns the hidden command that herd run -S starts as
// the keeper of its run (package keeper).
func newKeeperCommand(sigs <-chan os.Signal) *cobra.Command {
	return &cobra.Command{
		Use:    "run-keeper DIR",
		Short:  "keep a run of herd run -S going: started by herd run",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return keeper.Keep(args[0], sigs, cmd.OutOrStdout())
		},
	}
}
