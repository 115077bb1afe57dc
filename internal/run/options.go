package run

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/goherd/herd/internal/input"
	"github.com/goherd/herd/internal/replace"
)

// Options are herd run's options as the command line gives them, each value
// in GNU parallel's syntax (-j 50%, --halt now,fail=1, --block 10M ...).
// cmd/herd fills them from its flags and the environment; [Options.Config]
// checks them together and makes the run's [Config].
type Options struct {
	// How many jobs at once, and in what order their output comes.
	Jobs      string // -j
	KeepOrder bool   // -k

	// Inputs: where they come from, how they are split, how many go to a
	// job, and how they make the command line.
	ArgFiles     []string // -a
	ArgSep       string   // --arg-sep
	ArgFileSep   string   // --arg-file-sep
	Null         bool     // -0
	Delim        string   // -d
	ColSep       string   // --colsep
	Trim         string   // --trim
	NoRunIfEmpty bool     // -r
	EOF          string   // -E
	MaxArgs      int      // -n
	ExactArgs    int      // -N
	MaxLines     int      // -L, -l
	Xargs        bool     // --xargs
	Multi        bool     // -m
	Context      bool     // -X
	MaxChars     int      // -s
	Link         bool     // --link
	ReplaceStr   string   // -I, -i
	Plus         bool     // --plus
	Header       string   // --header
	Raw          bool     // --raw
	Quote        bool     // -q
	ShellQuote   bool     // --shellquote
	DryRun       bool     // --dry-run
	Verbose      bool     // -t
	Echo         bool     // -v
	Shuf         bool     // --shuf

	// How the jobs run: timing, retries, stop conditions, the job log.
	Delay        string // --delay
	Timeout      string // --timeout
	Termseq      string // --termseq
	Retries      int    // --retries
	Halt         string // --halt
	Joblog       string // --joblog
	Resume       bool   // --resume
	ResumeFailed bool   // --resume-failed
	RetryFailed  bool   // --retry-failed

	// Where the output goes.
	Tag        bool     // --tag
	TagString  string   // --tagstring
	LineBuffer bool     // --line-buffer
	Ungroup    bool     // -u
	Bar        bool     // --bar
	ETA        bool     // --eta
	Progress   bool     // --progress
	Results    string   // --results
	Files      bool     // --files
	TTY        bool     // --tty
	OpenTTY    bool     // -o
	Nice       int      // --nice
	Env        []string // --env: the names (cmd/herd reads their values)
	Shell      string   // --shell, else the one cmd/herd picks

	// --pipe: standard input (or, with --pipepart, the files of -a) cut
	// into blocks.
	Pipe       bool   // --pipe
	PipePart   bool   // --pipepart
	GroupBy    string // --group-by
	RoundRobin bool   // --round-robin
	Cat        bool   // --cat
	Fifo       bool   // --fifo
	Block      string // --block
	RecStart   string // --recstart
	RecEnd     string // --recend

	// The files that go with each job to the host that runs it.
	Transfer      bool     // --transfer
	TransferFiles []string // --transferfile
	ReturnFiles   []string // --return
	Cleanup       bool     // --cleanup
	Trc           []string // --trc
	BaseFiles     []string // --basefile
	Workdir       string   // --workdir

	// Where the jobs run: on a queue's workers (--queue), on the hosts of
	// -S, or here.
	Queued           bool     // --queue URL
	QueueLogin       bool     // --queue-name or an option to log in to a queue
	QueueCredentials bool     // --user, --password, --creds or TLS
	OnHosts          bool     // -S or --sshloginfile
	Attach           string   // --attach
	Detach           bool     // --detach
	After            []string // --after
	AfterEach        string   // --after-each
	Key              string   // --key
}

// Config checks the options together with the arguments (the command and
// its ::: and :::: inputs) and turns them into the run's configuration.
// changed reports whether the option of a long name was given on the
// command line, for options whose default means something of its own.
func (o Options) Config(args []string, changed func(string) bool) (*Config, error) {
	command, sources, err := input.Split(args, input.Separators{Args: o.ArgSep, Files: o.ArgFileSep})
	if err != nil {
		return nil, err
	}
	if err := firstBroken([]rule{
		{o.PipePart && (len(sources) > 0 || len(o.ArgFiles) == 0), "--pipepart cuts the files of -a: give -a FILE, and no ::: or :::: inputs"},
	}); err != nil {
		return nil, err
	}
	parts := o.ArgFiles
	if o.PipePart {
		o.Pipe, o.ArgFiles = true, nil // the files are --pipe's, not inputs
	}
	if err := firstBroken(o.rules(len(command) > 0, len(sources) > 0 || len(o.ArgFiles) > 0, changed)); err != nil {
		return nil, err
	}
	cfg := &Config{Raw: o.Raw, ShellQuote: o.ShellQuote, Shell: cmp.Or(o.Shell, "/bin/sh"), Shuf: o.Shuf, DryRun: o.DryRun, KeepOrder: o.KeepOrder, Verbose: o.Verbose, Echo: o.Echo,
		SkipEmpty: o.NoRunIfEmpty, NoArgs: (changed("max-args") && o.MaxArgs == 0) || (changed("max-replace-args") && o.ExactArgs == 0),
		Tag: o.Tag, TagString: o.TagString, LineBuffer: o.LineBuffer, Ungroup: o.Ungroup,
		Bar: o.Bar, ETA: o.ETA, Progress: o.Progress, Attempts: max(o.Retries, 1),
		Joblog: strings.TrimPrefix(o.Joblog, "+"), AppendLog: strings.HasPrefix(o.Joblog, "+"),
		Resume: o.Resume, ResumeFailed: o.ResumeFailed, RetryFailed: o.RetryFailed}
	ropts := replace.Options{Input: o.ReplaceStr, Plus: o.Plus}
	template, err := o.planCommand(cfg, command, ropts)
	if err != nil {
		return nil, err
	}
	if err := o.planTimes(cfg); err != nil {
		return nil, err
	}
	if err := o.planInputs(cfg, sources, template, changed); err != nil {
		return nil, err
	}
	if err := o.planBlocks(cfg, parts, changed); err != nil {
		return nil, err
	}
	if err := o.planOutput(cfg, ropts, changed); err != nil {
		return nil, err
	}
	o.planFiles(cfg, ropts)
	if err := o.planHeader(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// planCommand parses the command into the template of the jobs' command
// lines, with -q, -X, -m, --xargs, -s and --tagstring.
func (o Options) planCommand(cfg *Config, command []string, ropts replace.Options) (*replace.Template, error) {
	if len(command) == 0 && !o.RetryFailed && o.Attach == "" && !o.ShellQuote {
		// No command: each input is one, as GNU parallel runs it, unquoted.
		command, cfg.Raw = []string{ropts.Input}, true
		if command[0] == "" {
			command[0] = "{}"
		}
	}
	template := replace.Parse(strings.Join(command, " "), ropts)
	switch {
	case o.Quote:
		template = replace.ParseWords(command, ropts)
	case o.Context:
		template = replace.ParseContext(strings.Join(command, " "), ropts)
	}
	if err := template.Err(); err != nil {
		return nil, fmt.Errorf("--plus: %w", err)
	}
	if err := firstBroken([]rule{
		{perlExpr.MatchString(template.String()), "{= perl expression =}: herd runs no Perl; --plus has replacement strings for most of what these do ({#re} {%re} {/re/str} {:n:m} ...), or let the command's shell compute it"},
		{o.Pipe && template.NeedsTotal(), "{##} and {0#} need the number of jobs before the first starts: they do not go with --pipe"},
	}); err != nil {
		return nil, err
	}
	switch {
	case o.Xargs:
		cfg.Multi = "xargs"
	case o.Multi:
		cfg.Multi = "m"
	case o.Context:
		cfg.Multi = "X"
	}
	cfg.MaxChars = o.MaxChars
	if o.Attach == "" {
		cfg.Template = template // an attached run's jobs are those on the queue
	}
	if o.TagString != "" {
		cfg.TagTmpl = replace.Parse(o.TagString, ropts)
		if err := cfg.TagTmpl.Err(); err != nil {
			return nil, fmt.Errorf("--tagstring: %w", err)
		}
	}
	return template, nil
}

// planBlocks reads --pipe and --pipepart (whose files are parts), and how
// each job gets its block.
func (o Options) planBlocks(cfg *Config, parts []string, changed func(string) bool) error {
	if !o.Pipe {
		return nil
	}
	var err error
	if cfg.Pipe, err = o.planPipe(changed); err != nil {
		return err
	}
	if o.PipePart {
		cfg.Pipe.Part = parts
	}
	cfg.Pipe.RoundRobin = o.RoundRobin
	switch {
	case o.Cat:
		cfg.Pass = "cat"
	case o.Fifo:
		cfg.Pass = "fifo"
	}
	return nil
}

// planHeader reads --header: lines that start every block with --pipe, or
// else the first value of each input source naming its inputs.
func (o Options) planHeader(cfg *Config) error {
	if o.Header == "" {
		return nil
	}
	var err error
	if cfg.Pipe != nil {
		cfg.Pipe.Header, err = HeaderLines(o.Header)
	} else {
		_, err = HeaderLines(o.Header) // its first line, whatever N: as GNU parallel reads it
		cfg.Input.Header = true
		if cfg.Input.ColSep == nil {
			// Without --colsep the columns are split on tabs, untrimmed,
			// as GNU parallel does since its bug #37956.
			cfg.Input.ColSep = tab
		}
	}
	return err
}

var tab = regexp.MustCompile("\t")

// A rule is a way options can go wrong together: broken says whether they
// do, and msg what is wrong.
type rule struct {
	broken bool
	msg    string
}

// firstBroken returns the first broken rule's message, as an error.
func firstBroken(rules []rule) error {
	for _, r := range rules {
		if r.broken {
			return errors.New(r.msg)
		}
	}
	return nil
}

// rules are the ways herd run's options exclude or need each other, in
// the order they are checked.
func (o Options) rules(hasCommand, hasInputs bool, changed func(string) bool) []rule {
	queued, attach := o.Queued, o.Attach != ""
	resuming := o.Resume || o.ResumeFailed || o.RetryFailed
	return []rule{
		{!queued && (o.QueueLogin), "--queue-name and the options to log in to a queue need --queue URL"},
		{!queued && !o.OnHosts && o.Detach, "--detach needs --queue URL or -S HOSTS: the workers that see the run through"},
		{queued && o.OnHosts && o.Detach, "--detach with -S and --queue: the hosts' workers stop when herd run ends; start herd work on them to see a detached run through"},
		{!queued && (len(o.After) > 0 || o.AfterEach != ""), "--after and --after-each need --queue URL, where the runs they name are (a run of -S without it has a queue of its own)"},
		{!queued && o.Key != "", "--key needs --queue URL: it is for the limits of the queue's workers (herd queue limit)"},
		{attach && o.Key != "", "--attach shows an earlier run: --key does not go with it"},
		{attach && (o.Detach || len(o.After) > 0 || o.AfterEach != ""), "--attach shows an earlier run: --detach, --after and --after-each do not go with it"},
		{attach && (hasCommand || hasInputs), "--attach shows an earlier run: give no command or inputs"},
		{attach && (resuming || o.DryRun), "--attach shows an earlier run: --resume, --resume-failed, --retry-failed and --dry-run do not go with it"},
		{queued && (o.LineBuffer || o.Ungroup), "with --queue, each job's output comes back whole when it ends: --line-buffer and --ungroup do not go with it"},
		{queued && o.Delay != "", "--delay does not go with --queue: the workers start jobs as they take them"},
		{queued && strings.HasSuffix(o.Timeout, "%"), "--timeout N% does not go with --queue: give the time limit in seconds"},
		{queued && o.Pipe && changed("block") && parsesOver(o.Block, maxRemoteBlock), fmt.Sprintf("--block %s: with --queue, a block goes in a message of the queue: at most 512k", o.Block)},
		{!hasCommand && o.Pipe, "--pipe gives each block to a command: give one"},
		{o.Retries < 0, fmt.Sprintf("--retries %d: want a number of attempts, 1 or more", o.Retries)},
		{o.MaxArgs < 0 || o.ExactArgs < 0, fmt.Sprintf("-n %d, -N %d: want a positive number of inputs", o.MaxArgs, o.ExactArgs)},
		{o.Ungroup && o.LineBuffer, "--ungroup and --line-buffer: choose one"},
		{o.Ungroup && (o.Tag || o.TagString != ""), "--tag and --tagstring need whole lines: they do not go with --ungroup"},
		{resuming && strings.TrimPrefix(o.Joblog, "+") == "", "--resume, --resume-failed and --retry-failed need --joblog FILE"},
		{o.Resume && o.ResumeFailed, "--resume and --resume-failed: choose one"},
		{o.RetryFailed && (hasCommand || hasInputs), "--retry-failed runs the failed commands of the job log: give no command or inputs"},
		{o.Null && changed("delimiter"), "-0 and -d: choose one"},
		{o.Pipe && hasInputs, "--pipe reads standard input: give no ::: or :::: inputs or -a"},
		{o.ArgSep == "" || o.ArgFileSep == "" || o.ArgSep == o.ArgFileSep, "--arg-sep and --arg-file-sep must be two different words"},
		{boolCount(o.Xargs, o.Multi, o.Context) > 1, "--xargs, -m and -X: choose one"},
		{(o.Xargs || o.Multi || o.Context) && (o.MaxArgs != 0 || o.ExactArgs != 0 || o.MaxLines != 0 || o.Pipe), "--xargs, -m and -X fill each command line: they do not go with -n, -N, -L or --pipe"},
		{o.MaxChars < 0 || o.MaxLines < 0, "-s and -L: want a positive number"},
		{(o.Cat || o.Fifo) && !o.Pipe, "--cat and --fifo give each job its --pipe block in a file: they need --pipe or --pipepart"},
		{o.Cat && o.Fifo, "--cat and --fifo: choose one"},
		{o.OnHosts && queued && o.QueueCredentials,
			"-S reaches --queue through ssh tunnels, with no login or a --token: --user, --password, --creds and TLS do not go with it yet"},
		{o.OnHosts && (o.TTY || o.OpenTTY || o.RoundRobin || o.Cat || o.Fifo || o.LineBuffer || o.Ungroup || o.Delay != "" || strings.HasSuffix(o.Timeout, "%")),
			"with -S, jobs run as they do with --queue: --tty, --round-robin, --cat, --fifo, --line-buffer, --ungroup, --delay and --timeout N% do not go with it"},
		{!o.OnHosts && (changed("ssh") || changed("sshdelay")), "--ssh and --sshdelay say how to reach the hosts of -S: give -S"},
		{o.RoundRobin && !o.Pipe, "--round-robin hands out --pipe blocks: it needs --pipe"},
		{o.RoundRobin && (o.Cat || o.Fifo || queued), "--round-robin gives blocks to running jobs on their standard input, here: --cat, --fifo and --queue do not go with it"},
		{(o.Results != "" || o.Files) && (o.Ungroup || o.LineBuffer), "--results and --files take each job's output whole: they do not go with --ungroup or --line-buffer"},
		{queued && (o.TTY || o.OpenTTY), "--tty: jobs on a queue run where there is no terminal"},
		{slices.Contains(o.Env, "_"), "--env _ (every variable not in ~/.parallel/ignored_vars) is not supported: name the variables and functions"},
	}
}

// planOutput reads --results, --files, --tty and --nice.
func (o Options) planOutput(cfg *Config, ropts replace.Options, changed func(string) bool) error {
	switch ext := filepath.Ext(o.Results); {
	case o.Results == "" && o.Files:
		cfg.Results = &Results{Files: true}
	case o.Results == "":
	case ext == ".csv" || ext == ".tsv" || ext == ".json":
		cfg.Results = &Results{Table: o.Results, Files: o.Files}
	default:
		name := replace.Parse(o.Results, ropts)
		if err := name.Err(); err != nil {
			return fmt.Errorf("--results: %w", err)
		}
		cfg.Results = &Results{Dir: o.Results, Files: o.Files}
		if name.HasReplacement() {
			cfg.Results = &Results{Name: name, Files: o.Files}
		}
	}
	cfg.TTY = o.TTY || o.OpenTTY
	if o.TTY {
		if !changed("jobs") && !changed("max-procs") {
			cfg.Jobs = 1
		}
		cfg.Ungroup = !o.LineBuffer
	}
	cfg.Nice = o.Nice
	return nil
}

// planFiles reads --transfer, --transferfile, --return, --cleanup, --trc
// and --basefile: what goes with each job to the host that runs it.
func (o Options) planFiles(cfg *Config, ropts replace.Options) {
	transfers := o.TransferFiles
	if o.Transfer || len(o.Trc) > 0 {
		transfers = append([]string{"{}"}, transfers...)
	}
	for _, t := range transfers {
		cfg.Transfer = append(cfg.Transfer, replace.Parse(t, ropts))
	}
	for _, r := range slices.Concat(o.ReturnFiles, o.Trc) {
		cfg.Return = append(cfg.Return, replace.Parse(r, ropts))
	}
	cfg.BaseFiles = o.BaseFiles
	cfg.Cleanup = o.Cleanup || len(o.Trc) > 0
	switch o.Workdir {
	case "":
	case ".":
		cfg.Workdir.Here = true
	case "...":
		cfg.Workdir.Temp = true
	default:
		cfg.Workdir.Dir = replace.Parse(o.Workdir, ropts)
	}
}

// perlExpr matches GNU parallel's {= perl expression =} and {n= ... =}.
var perlExpr = regexp.MustCompile(`\{-?[0-9]*=.*=\}`)

// KeyTemplate is --key, parsed; nil if not given.
func (o Options) KeyTemplate() *replace.Template {
	if o.Key == "" {
		return nil
	}
	return replace.Parse(o.Key, replace.Options{Input: o.ReplaceStr, Plus: o.Plus})
}

// boolCount is how many of bs are true.
func boolCount(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// parsesOver reports whether size is a size above limit.
func parsesOver(size string, limit int64) bool {
	n, err := ParseSize("", size)
	return err == nil && n > limit
}

// planTimes reads -j, --delay, --timeout and --halt.
func (o Options) planTimes(cfg *Config) error {
	var err error
	if cfg.Jobs, err = ParseJobs(o.Jobs, runtime.NumCPU()); err != nil {
		return err
	}
	if cfg.Delay, err = ParseSeconds("--delay", o.Delay); err != nil {
		return err
	}
	if before, ok := strings.CutSuffix(o.Timeout, "%"); ok {
		pc, err := strconv.ParseFloat(before, 64)
		if err != nil || pc <= 0 || math.IsInf(pc, 0) {
			return fmt.Errorf("--timeout %q: want seconds or a positive percentage like 200%%", o.Timeout)
		}
		cfg.TimeoutPercent = pc
	} else if cfg.Timeout, err = ParseSeconds("--timeout", o.Timeout); err != nil {
		return err
	}
	if cfg.Halt, err = ParseHalt(o.Halt); err != nil {
		return err
	}
	cfg.TermSeq, err = ParseTermSeq(o.Termseq)
	return err
}

// planInputs reads the input sources and how they are split.
func (o Options) planInputs(cfg *Config, sources []input.Source, template *replace.Template, changed func(string) bool) error {
	for _, f := range o.ArgFiles {
		sources = append(sources, input.Source{Path: f})
	}
	cfg.Input = input.Config{Sources: sources, Link: o.Link, MaxArgs: max(o.MaxArgs, o.ExactArgs, o.MaxLines), EOF: o.EOF, Trim: o.Trim}
	switch o.Trim {
	case "":
		if o.ColSep != "" {
			cfg.Input.Trim = "lr" // GNU parallel trims columns unless told not to
		}
	case "n", "l", "r", "lr", "rl":
	default:
		return fmt.Errorf("--trim %q: want n, l, r or lr", o.Trim)
	}
	var err error
	switch {
	case o.Null:
		cfg.Input.Delim = "\x00"
	case changed("delimiter"):
		if cfg.Input.Delim, err = Unescape(o.Delim); err != nil || cfg.Input.Delim == "" {
			return fmt.Errorf("-d %q: want a delimiter such as , or \\t or \\0", o.Delim)
		}
	}
	if o.ColSep != "" {
		if cfg.Input.ColSep, err = regexp.Compile(o.ColSep); err != nil {
			return fmt.Errorf("--colsep %q: %v", o.ColSep, err)
		}
	}
	if o.ExactArgs == 0 && o.MaxArgs == 0 && !o.Xargs && !o.Multi && !o.Context && template.MaxPos() > 1 && len(sources) <= 1 && o.ColSep == "" {
		// {2} and up with one source: GNU parallel reads that many per job.
		cfg.Input.MaxArgs = template.MaxPos()
	}
	return nil
}

// planPipe reads how --pipe cuts standard input into blocks.
func (o Options) planPipe(changed func(string) bool) (*Pipe, error) {
	block := o.Block
	if o.Queued && !changed("block") {
		block = "256k" // a block goes in a message of the queue
	}
	p := &Pipe{Records: o.ExactArgs}
	var err error
	if n, ok := strings.CutPrefix(block, "-"); ok && o.PipePart {
		// --block -N: each file in N parts per job slot.
		if p.Parts, err = strconv.Atoi(n); err != nil || p.Parts < 1 {
			return nil, fmt.Errorf("--block %s: want a size, or with --pipepart -N for N parts per job slot", block)
		}
	} else if p.Block, err = ParseSize("--block", block); err != nil {
		return nil, err
	}
	if p.RecStart, err = Unescape(o.RecStart); err != nil {
		return nil, fmt.Errorf("--recstart %q: %v", o.RecStart, err)
	}
	if p.RecEnd, err = Unescape(o.RecEnd); err != nil {
		return nil, fmt.Errorf("--recend %q: %v", o.RecEnd, err)
	}
	if o.GroupBy != "" {
		p.GroupSep = regexp.MustCompile("\t")
		if o.ColSep != "" {
			if p.GroupSep, err = regexp.Compile(o.ColSep); err != nil {
				return nil, fmt.Errorf("--colsep %q: %v", o.ColSep, err)
			}
		}
		if p.GroupBy, err = strconv.Atoi(o.GroupBy); err != nil {
			p.GroupBy, p.GroupName = 0, o.GroupBy
		} else if p.GroupBy < 1 {
			return nil, fmt.Errorf("--group-by %s: want a column number (1 is the first) or a --header name", o.GroupBy)
		}
	}
	return p, nil
}

// maxRemoteBlock is the biggest --pipe block herd run --queue sends: it
// goes in a NATS message (1MiB by default) with the rest of the job.
const maxRemoteBlock = 512 << 10
