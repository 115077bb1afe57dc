package main

import (
	"io"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goherd/herd/internal/command"
	"github.com/goherd/herd/internal/run"
	"github.com/spf13/cobra"
)

func TestParseJobs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 4}, {"3", 3}, {"0", 1000}, {"50%", 2}, {"10%", 1}, {"+2", 6}, {"-1", 3}, {"-10", 1}, {"150%", 6},
	} {
		if got, err := parseJobs(tc.in, 4); err != nil || got != tc.want {
			t.Errorf("parseJobs(%q, 4) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"x", "-", "+", "1.5", "-x", "0%", "%", "-3%"} {
		if _, err := parseJobs(bad, 4); err == nil {
			t.Errorf("parseJobs(%q) = nil error", bad)
		}
	}
}

func TestParseHalt(t *testing.T) {
	for in, want := range map[string]run.Halt{
		"":               {},
		"never":          {},
		"1":              {On: "fail", Count: 1},
		"2":              {Now: true, On: "fail", Count: 1},
		"now,fail=3":     {Now: true, On: "fail", Count: 3},
		"soon,success=1": {On: "success", Count: 1},
		"now,done=20%":   {Now: true, On: "done", Percent: 20},
	} {
		if want.On != "" {
			want.Text = in // for its messages
		}
		if got, err := parseHalt(in); err != nil || got != want {
			t.Errorf("parseHalt(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"later,fail=1", "now", "now,fail", "now,fail=0", "now,oops=1", "soon,fail=101%", "3"} {
		if _, err := parseHalt(bad); err == nil {
			t.Errorf("parseHalt(%q) = nil error", bad)
		}
	}
}

func TestParseSecondsAndSize(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "2": 2 * time.Second, "0.5": 500 * time.Millisecond, "1m30s": 90 * time.Second} {
		if got, err := parseSeconds("--x", in); err != nil || got != want {
			t.Errorf("parseSeconds(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1", "soon", "1e99"} {
		if _, err := parseSeconds("--x", bad); err == nil {
			t.Errorf("parseSeconds(%q) = nil error", bad)
		}
	}
	for in, want := range map[string]int64{"1": 1, "10K": 10 << 10, "10k": 10000, "1M": 1 << 20, "1m": 1e6, "2G": 2 << 30, "2g": 2e9, "1.5K": 1536} {
		if got, err := parseSize("--block", in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "k", "0", "-1M", "lots", "2P"} {
		if _, err := parseSize("--block", bad); err == nil {
			t.Errorf("parseSize(%q) = nil error", bad)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`,`: ",", `\n`: "\n", `\t`: "\t", `\0`: "\x00", `\x41\\`: "A\\", `a\qb`: `a\qb`} {
		if got, err := unescape(in); err != nil || got != want {
			t.Errorf("unescape(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`\x`, `\x4`, `\xzz`} {
		if _, err := unescape(bad); err == nil {
			t.Errorf("unescape(%q) = nil error", bad)
		}
	}
}

func TestParseTermSeq(t *testing.T) {
	got, err := parseTermSeq("TERM,200,SIGINT,0,9,25")
	want := []command.Term{{Signal: syscall.SIGTERM, Wait: 200 * time.Millisecond}, {Signal: syscall.SIGINT}, {Signal: syscall.SIGKILL, Wait: 25 * time.Millisecond}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("parseTermSeq = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", "TERM", "TERM,x", "NOPE,10", "TERM,-1", "0,10"} {
		if _, err := parseTermSeq(bad); err == nil {
			t.Errorf("parseTermSeq(%q) = nil error", bad)
		}
	}
}

// herd run's arguments become the run's configuration, with no process
// started: each case parses a command line and checks what it sets.
func TestPlan(t *testing.T) {
	plan := func(args ...string) (cfg *run.Config, err error) {
		cmd := newRunCommandWith(func(o *runOptions, cmd *cobra.Command, args []string) error {
			cfg, err = o.plan(args, cmd.Flags().Changed)
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
		"":                                "no command given",
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
