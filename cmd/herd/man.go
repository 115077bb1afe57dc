package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manDate is the date the manual pages carry. It is fixed, so that the
// pages change only when the commands do; set it to the day of a release
// when the pages changed for it.
var manDate = time.Date(2026, time.November, 29, 0, 0, 0, 0, time.UTC)

func newManCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "man DIR",
		Short: "write herd's manual pages, one per command (herd.1, herd-run.1, ...), to DIR",
		Long: `Write herd's manual pages to DIR, one per command: herd.1, herd-run.1,
herd-work.1, herd-queue-serve.1 and so on. The pages are made from the commands'
own help, so they say what --help says.`,
		Example: `  herd man ~/.local/share/man/man1 && man herd-run
  sudo herd man /usr/local/share/man/man1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			if err := writeManPages(root, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "herd man: wrote the manual pages to %s\n", args[0])
			return nil
		},
	}
}

// writeManPages writes a manual page for root and every command under it
// to dir.
func writeManPages(root *cobra.Command, dir string) error {
	var prepare func(*cobra.Command)
	prepare = func(c *cobra.Command) {
		c.DisableAutoGenTag = true // no date of generation: see manDate
		c.Long = preformatted(c.Long)
		for _, sub := range c.Commands() {
			prepare(sub)
		}
	}
	prepare(root)
	date := manDate
	return doc.GenManTree(root, &doc.GenManHeader{Section: "1", Date: &date, Source: "herd", Manual: "herd manual"}, dir)
}

// preformatted keeps the layout of the indented lines of a command's help
// (tables, lists) in its manual page, which is made from Markdown: it turns
// them into code blocks.
func preformatted(help string) string {
	var out []string
	prev := ""
	for line := range strings.Lines(help) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, " ") {
			if prev != "" && !strings.HasPrefix(prev, " ") {
				out = append(out, "")
			}
			out = append(out, "    "+line)
		} else {
			out = append(out, line)
		}
		prev = line
	}
	return strings.Join(out, "\n")
}
