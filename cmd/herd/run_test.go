package main

import (
	"io"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goherd/herd/internal/run"
	"github.com/spf13/cobra"
)

func TestPlan(t *testing.T) {
	t.Parallel()
	plan := func(args ...string) (cfg *run.Config, err error) {
		cmd := newRunCommandWith(func(o *runOptions, cmd *cobra.Command, args []string) error {
			cfg, err = o.config(args, cmd.Flags().Changed)
			return nil
		})
		cmd.SetArgs(args)
		cmd.SetOut(io.Discard)
		if err := cmd.Execute(); err != nil {
			return nil, err
		}
		return cfg, err
	}
	for _, tc := range []struct {
		args  []string
		check func(*run.Config) bool
	}{
		{[]string{"-P", "3", "echo", ":::", "a"}, func(c *run.Config) bool { return c.Jobs == 3 }},
		{[]string{"--retries", "4", "--timeout", "2.5", "echo"}, func(c *run.Config) bool { return c.Attempts == 4 && c.Timeout == 2500*time.Millisecond }},
		{[]string{"--timeout", "300%", "echo"}, func(c *run.Config) bool { return c.TimeoutPercent == 300 }},
		{[]string{"--joblog", "+log", "--resume", "echo"}, func(c *run.Config) bool { return c.Joblog == "log" && c.AppendLog && c.Resume }},
		{[]string{"--jl", "log", "--halt-on-error", "now,fail=1", "echo"}, func(c *run.Config) bool { return c.Joblog == "log" && c.Halt.Now }},
		{[]string{"--joblo", "log", "--keep", "--xapply", "echo", ":::", "a", ":::", "b"}, func(c *run.Config) bool { return c.Joblog == "log" && c.KeepOrder && c.Input.Link }},
		{[]string{"--block-size", "2k", "--pipe", "wc"}, func(c *run.Config) bool { return c.Pipe != nil && c.Pipe.Block == 2000 }},
		{[]string{"-N0", "echo", ":::", "a"}, func(c *run.Config) bool { return c.NoArgs && c.Input.MaxArgs == 0 }},
		{[]string{"-n", "2", "echo", ":::", "a"}, func(c *run.Config) bool { return !c.NoArgs && c.Input.MaxArgs == 2 }},
		{[]string{"echo", "{2}", ":::", "a"}, func(c *run.Config) bool { return c.Input.MaxArgs == 2 }},
		{[]string{"-0", "echo"}, func(c *run.Config) bool { return c.Input.Delim == "\x00" }},
		{[]string{"--pipe", "--block", "2k", "wc"}, func(c *run.Config) bool { return c.Pipe != nil && c.Pipe.Block == 2000 }},
		{[]string{"--termseq", "INT,10", "echo"}, func(c *run.Config) bool { return len(c.TermSeq) == 1 && c.TermSeq[0].Signal == syscall.SIGINT }},
		{[]string{"--shell", "/bin/dash", "echo"}, func(c *run.Config) bool { return c.Shell == "/bin/dash" }},
		{[]string{"--pipepart", "-a", "f", "--block", "-3", "wc"}, func(c *run.Config) bool {
			return c.Pipe.Parts == 3 && slices.Equal(c.Pipe.Part, []string{"f"}) && len(c.Input.Sources) == 0
		}},
		{[]string{"-S", "2/h1,:", "--slf", "f", "echo"}, func(c *run.Config) bool { return c.Shell == "/bin/sh" }},
		{[]string{"-S", "h1", "-M", "--filter-hosts", "--sshdelay", "0.5", "echo"}, func(c *run.Config) bool { return c.Shell == "/bin/sh" }},
		{[]string{"--tty", "vi"}, func(c *run.Config) bool { return c.TTY && c.Jobs == 1 && c.Ungroup }},
		{[]string{"--tty", "-j2", "--line-buffer", "vi"}, func(c *run.Config) bool { return c.TTY && c.Jobs == 2 && !c.Ungroup }},
		{[]string{"-o", "vi"}, func(c *run.Config) bool { return c.TTY && c.Jobs > 0 && !c.Ungroup }},
		{[]string{"--results", "out/{}.txt", "echo"}, func(c *run.Config) bool { return c.Results.Name != nil && c.Results.Dir == "" }},
		{[]string{"--res", "out", "echo"}, func(c *run.Config) bool { return c.Results.Dir == "out" }},
		{[]string{"--results", "r.tsv", "--files", "echo"}, func(c *run.Config) bool { return c.Results.Table == "r.tsv" && c.Results.Files }},
		{[]string{"--queue", "nats://127.0.0.1:1", "--pipe", "wc"}, func(c *run.Config) bool { return c.Pipe.Block == 256000 && c.Shell == "/bin/sh" }},
	} {
		c, err := plan(tc.args...)
		if err != nil || !tc.check(c) {
			t.Errorf("herd run %q: %+v, %v", tc.args, c, err)
		}
	}
	for args, want := range map[string]string{
		"--ungroup --line-buffer echo":    "choose one",
		"--resume echo":                   "need --joblog",
		"--attach x echo":                 "give no command",
		"--queue-name q echo":             "need --queue URL",
		"--queue nats://x --delay 1 echo": "--delay does not go with --queue",
		"--arg-sep :::: echo":             "two different words",
		"-0 -d , echo":                    "-0 and -d",
		"--termseq TERM echo":             "--termseq",
		"--pipe":                          "--pipe gives each block to a command",
		"echo {=uc=}":                     "herd runs no Perl",
		"echo {1=$_++=}":                  "herd runs no Perl",
		"--plus echo {#a(}":               "--plus: {#a(}",
		"--header x echo":                 "--header \"x\"",
		"--plus --pipe echo {##}":         "do not go with --pipe",
		"--results out -u echo":           "do not go with --ungroup",
		"--queue nats://x --tty vi":       "no terminal",
		"--env _ echo":                    "name the variables",
		"--pipepart wc":                   "give -a FILE",
		"--cat wc":                        "need --pipe",
		"-S h --queue nats://x --user u --password p echo": "do not go with it yet",
		"-S h --pipe --round-robin wc":                     "do not go with it",
		"--ssh myssh echo":                                 "give -S",
		"--sshdelay 1 echo":                                "give -S",
		"--round-robin wc":                                 "it needs --pipe",
		"--pipe --round-robin --cat wc":                    "do not go with it",
		"--pipe --cat --fifo wc":                           "choose one",
		"--pipepart -a f wc ::: x":                         "give -a FILE",
		"--pipe --block -2 wc":                             "--block \"-2\"",
		"--pipe --group-by 0 wc":                           "want a column number",
	} {
		if _, err := plan(strings.Fields(args)...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("herd run %s: %v, want an error saying %q", args, err, want)
		}
	}
}
