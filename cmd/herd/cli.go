package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Exit statuses of herd run, as GNU parallel's: 0 when every job
// succeeded, 1 to 100 the number of jobs that failed, 101 more than 100,
// and 255 for any other error, such as a bad option. A run stopped by a
// signal exits 128 plus the signal's number, as a shell reports it.
const (
	exitManyFailed = 101
	exitError      = 255
)

// run is herd's main: it parses args and runs the subcommand, returning the
// exit status.
func run(ctx context.Context, args []string, sigs <-chan os.Signal, stdin io.Reader, stdout, stderr io.Writer) int {
	status := 0
	root := newRootCommand(ctx, sigs, &status)
	args, err := withDefaultOptions(args, os.Getenv, os.UserHomeDir)
	if err != nil {
		fmt.Fprintf(stderr, "herd run: %v\n", err)
		return exitError
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err != nil {
		name := "herd"
		if cmd != nil && cmd != root {
			name = cmd.CommandPath()
		}
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitError
	}
	return status
}

// newRootCommand returns herd's command tree; the subcommands that run
// something leave their exit status in status.
func newRootCommand(ctx context.Context, sigs <-chan os.Signal, status *int) *cobra.Command {
	root := &cobra.Command{
		Use:   "herd",
		Short: "a queue of things to be done, and workers pulling things off the queue",
		Long: `herd runs work on a fixed number of workers.

  herd run     runs a shell command for every input, N at a time, with GNU parallel's
               options and job log (see herd run --help); with --queue URL, on the
               herd work processes of a queue, on any machine
  herd work    runs the jobs of herd run --queue
  herd queue   serves the queue (herd queue serve) and shows what is in it`,
		Version:           buildVersion(),
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true, // the manual pages stay the same from one day to the next
	}
	root.SetVersionTemplate("{{.Version}}")
	root.AddCommand(newRunCommand(ctx, sigs, status))
	root.AddCommand(newWorkCommand(ctx, sigs, status))
	root.AddCommand(newQueueCommand(ctx, sigs, status))
	root.AddCommand(newVersionCommand())
	root.AddCommand(newManCommand(root))
	return root
}
