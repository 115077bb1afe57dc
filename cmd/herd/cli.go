package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/goherd/herd/internal/run"
	"github.com/spf13/cobra"
)

// exitStatus is an error that ends herd with that status, once the command
// has said why: herd run's exit status counts its failed jobs.
type exitStatus int

func (s exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

// withStatus returns the error that ends herd with status n: nil for 0;
// err itself if it is not nil, which execute says and maps to
// run.StatusError.
func withStatus(n int, err error) error {
	switch {
	case err != nil:
		return err
	case n == 0:
		return nil
	}
	return exitStatus(n)
}

// execute is herd's main: it parses args and runs the subcommand, returning the
// exit status. It is the one place that turns errors into exit statuses: a
// command returns an exitStatus once it has said why (herd run's count of
// failed jobs, 128 plus a signal's number), and any other error, which is
// said here, prefixed by the command's name, ends herd with
// run.StatusError.
func execute(ctx context.Context, args []string, sigs <-chan os.Signal, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand(ctx, sigs)
	args, err := withDefaultOptions(args, os.Getenv, os.UserHomeDir)
	if err != nil {
		fmt.Fprintf(stderr, "herd run: %v\n", err)
		return run.StatusError
	}
	if len(args) > 0 && args[0] == "run" {
		if runCmd, _, err := root.Find(args[:1]); err == nil {
			rest, err := gnuAttached(runCmd.Flags(), args[1:])
			if err != nil {
				fmt.Fprintf(stderr, "herd run: %v\n", err)
				return run.StatusError
			}
			args = append(args[:1:1], rest...)
		}
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if st, ok := errors.AsType[exitStatus](err); ok {
		return int(st)
	}
	if err != nil {
		name := "herd"
		if cmd != nil && cmd != root {
			name = cmd.CommandPath()
		}
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return run.StatusError
	}
	return 0
}

// newRootCommand returns herd's command tree.
func newRootCommand(ctx context.Context, sigs <-chan os.Signal) *cobra.Command {
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
	root.AddCommand(newRunCommand(ctx, sigs))
	root.AddCommand(newWorkCommand(ctx, sigs))
	root.AddCommand(newQueueCommand(ctx, sigs))
	root.AddCommand(newVersionCommand())
	root.AddCommand(newManCommand(root))
	root.AddCommand(newKeeperCommand(sigs))
	return root
}
