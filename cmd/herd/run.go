package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/goherd/herd/internal/run"
	"github.com/goherd/herd/internal/run/remote"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

const runHelp = `Run COMMAND once for every input, N jobs at a time.

Inputs come from the arguments after :::, the lines of the files after :::: or -a,
or else standard input, one per line. Several input sources are combined in every
combination; :::+ and ::::+ (or --link) pair a source with the one before instead.
In COMMAND, {} is replaced by the input, shell-quoted; with no replacement string
the input is appended. With no COMMAND, each input is a command line for the shell,
as it is (with -n or -X: the inputs joined by spaces): herd run < jobs.txt runs the
lines of jobs.txt. The replacement strings are GNU parallel's:

  {}    the input             {.}   without its extension    {/}  basename
  {//}  dirname               {/.}  basename, no extension   {#}  the job's number
  {%}   the job slot          {n} {n.} {n/} {n//} {n/.}       the n-th input ({-n}: from the end)

With --header, {name} stands for the input (with --colsep, the column) that the first
value of its source names. --plus adds GNU parallel's {+/} {+.} {..} {...} {/..} {/...}
{+..} {+...}, {##} (the number of jobs), {0#} (the job's number, zero-padded) and those
after bash's ${...}: {:-str} {:n} {:n:m} {#re} {##re} {%re} {%%re} {/re/str} {/#re/str}
{/%re/str} {//re/str} {^re} {^^re} {,re} {,,re}, with Go's regular expressions where
GNU parallel has Perl's, and {slot} {host} {sshlogin}, which the job's shell reads from
its variables. {= perl expression =} is refused: herd runs no Perl.

Every job runs in a process group of its own, with PARALLEL_SEQ (the job's number),
PARALLEL_JOBSLOT (its slot), PARALLEL_SSHHOST and PARALLEL_SSHLOGIN (its host of -S,
: here) in its environment, and with /dev/null as its
standard input unless --pipe gives it a block of herd's. Its command line runs in the
shell herd was started from, as in GNU parallel, so that exported functions (export -f)
and the shell's syntax work: --shell, else $PARALLEL_SHELL, else that shell, else
$SHELL, else /bin/sh (with --queue: --shell, $PARALLEL_SHELL or /bin/sh). A command
line that only names a program and its arguments runs it directly, without a shell.

Where herd differs from GNU parallel, on purpose:
  - Inputs are always shell-quoted where they are substituted, so that an input is
    data and never code ("x; rm -rf ~" stays one harmless argument). --raw turns this
    off for inputs that are meant to be shell code.
  - --joblog with --resume, --resume-failed: herd checks that every job already in the
    job log had the same command line it has now, and refuses to go on if not, rather
    than skipping or re-running the wrong jobs.
  - --retries N means N attempts in all, as GNU parallel counts them.
  - -k has no effect with --ungroup.
  - When a job's shell exits, whatever it left running in its process group is killed.

Default options, as GNU parallel reads them: each line of the config file of
$PARALLEL_HOME, $XDG_CONFIG_HOME/parallel and ~/.parallel (lines starting with # are
skipped), or with -J NAME of the file NAME there instead of config, then $PARALLEL,
are put before the command line's options, so that the command line wins. --plain
ignores them.

Signals, as GNU parallel takes them: SIGINT (Ctrl-C) or SIGTERM kills the running jobs
and starts no more: every running job's process group gets the signals of --termseq
(TERM,200,TERM,100,TERM,50,KILL,25: a signal, then the milliseconds to wait for the job
to end), then SIGKILL. SIGHUP starts no more jobs and lets the running ones finish.
herd exits 128 plus the signal's number. Every job that ran, killed or not, has its row
in the job log.

With --queue URL, the jobs go on a durable queue (herd queue serve) and run on the
herd work processes attached to it, on any machine, exactly as they would here; herd
run prints their output, writes the job log (its Host column naming the machine) and
exits as if they had run here. -j has no effect then: each herd work runs its own number
of jobs at once. The jobs get the worker's environment and working folder. --delay,
--timeout N%, --line-buffer and --ungroup do not go with --queue, and --pipe blocks are
at most 512k. The run has an id, printed first: if herd run stops (a lost terminal, a
kill), the jobs run on, and herd run --queue URL --attach ID shows their output and
exit status later. With --queue, SIGINT or SIGTERM kills the run's running jobs on the
workers and starts no more; a second, or SIGHUP, leaves the run to the workers and
exits.

With -S host1,host2 (GNU parallel's --sshlogin: [N/][user@]host[:port], : for this
machine, --sshloginfile FILE for a file of them), the jobs run on those hosts, through
the queue: herd serves a queue on this machine's loopback for the run, reaches each
host with ssh (--ssh COMMAND; your ssh config and agent apply, and no password is
asked) and starts herd work there, with a reverse tunnel to the queue, so that no port
is opened to the network. A host without this version of herd on its PATH gets a copy
in ~/.cache/herd, if it runs the same OS and architecture. N/ or -j says how many jobs
run at once on each host (default: its CPUs). A host that cannot be reached, or is lost
mid-run, is said once, and its jobs go to the others (within 10s); when every host is
lost, herd run stops with status 255. The run outlives herd run: a keeper process of
its own holds the run's queue and the ssh sessions, so that if herd run is killed or
loses its terminal, the jobs run on, and herd run --attach ID shows them (the run's
data is in ~/.local/share/herd/runs until then, or for a week). With --queue URL, the hosts work for
that lasting queue instead (reached through the same tunnels; a --token is passed on,
out of sight of ps): if herd run is killed, the run stays on the queue and its hosts
stop, and herd run -S ... --queue URL --attach ID starts them again and shows the run. Jobs run
in the remote home folder, with the remote environment (--env sends variables), as
with --queue (--workdir DIR: in DIR, relative to the home folder; --workdir . the
folder of the same path as here; --workdir ... a new folder for each job, gone after
it). When the run ends the workers stop and nothing of it is left on the hosts. --transfer (--transferfile FILE)
takes each job's files to the host that runs it, --return FILE brings files back,
--basefile FILE goes to each host once, --cleanup removes them all from the hosts
(--trc FILE is --transfer --return FILE --cleanup): the files travel through the queue,
so they work with --queue and any herd work too. Jobs run here have their files
already: on this machine these options do nothing.

Exit status: 0 if every job succeeded; 1-100, the number of jobs that failed; 101, more
than 100; with --halt ...,fail=..., the exit status of the job that stopped the run;
128+N after signal N stopped the run; 255 for any other error (a bad option, an
unreadable input file), in which case no job is started.`

// runOptions are herd run's flags.
type runOptions struct {
	run.Options
	sshLogins     []string
	sshLoginFiles []string
	ssh           string
	sshDelay      string
	controlMaster bool
	filterHosts   bool
	conn          connFlags
	queueName     string
}

func newRunCommand(ctx context.Context, sigs <-chan os.Signal) *cobra.Command {
	return newRunCommandWith(func(o *runOptions, cmd *cobra.Command, args []string) error {
		cfg, err := o.config(args, cmd.Flags().Changed)
		if err != nil {
			return err
		}
		r := run.New(cfg, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		if o.onHosts() || o.Attach != "" && o.conn.url == "" {
			return runOnHosts(ctx, o, r, sigs, cmd.Flags().Changed, cmd.OutOrStdout())
		}
		var exec run.Executor = run.Local{}
		if o.conn.url != "" {
			exec = &remote.Executor{Open: o.openQueue, QueueName: o.queueName, URL: o.conn.url, Attach: o.Attach,
				JobsIgnored: cmd.Flags().Changed("jobs"), SubmitOnly: o.Detach, Out: cmd.OutOrStdout(),
				After: o.After, AfterEach: o.AfterEach, Key: o.KeyTemplate()}
		}
		return withStatus(r.Run(ctx, exec, sigs))
	})
}

// openQueue connects to the queue of --queue, for the queue executor.
func (o *runOptions) openQueue(ctx context.Context, log io.Writer) (remote.Client, error) {
	c, err := o.conn.open(ctx, log)
	if err != nil {
		return nil, err
	}
	return remote.Connected(c), nil
}

// newRunCommandWith returns herd run's command, which reads its options and
// hands them to runF with its arguments: tests give a runF that starts
// nothing.
func newRunCommandWith(runF func(o *runOptions, cmd *cobra.Command, args []string) error) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run [options] COMMAND [ARGS...] [::: INPUTS... | :::: FILES...]",
		Short: "run a command for every input, N at a time (like GNU parallel)",
		Long:  runHelp,
		Example: `  herd run gzip ::: *.log                 # compress every log, one job per CPU
  find . -name '*.jpg' | herd run -j8 convert {} {.}.png
  herd run -k echo {1} {2} ::: a b ::: 1 2      # a 1, a 2, b 1, b 2, in that order
  herd run --joblog jobs.tsv --resume-failed ./process.sh :::: ids.txt
  cat big.csv | herd run --pipe --block 10M wc -l
  herd run --queue nats://queue-host:4222 -k ./render.sh {} ::: scene*.blend`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if v, _ := cmd.Flags().GetBool("version"); v {
				_, err := fmt.Fprint(cmd.OutOrStdout(), buildVersion())
				return err
			}
			return runF(&o, cmd, args)
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // the command's own options are not ours
	f.SortFlags = false
	o.addJobsFlags(f)
	o.addInputFlags(f)
	o.addControlFlags(f)
	o.addOutputFlags(f)
	o.addPipeFlags(f)
	o.addResultFlags(f)
	o.addHostFlags(f)
	f.SetNormalizeFunc(gnuNames) // once every option is defined
	o.addQueueFlags(f)
	f.Bool("plain", false, "ignore the default options of ~/.parallel/config and $PARALLEL (see above)")
	f.StringArrayP("profile", "J", nil, "read the default options from the file `NAME` in ~/.parallel (and the other folders above) instead of config; a NAME that starts with / or ./ is a path")
	f.Bool("version", false, "print herd's version and exit")
	return cmd
}

// addJobsFlags adds the flags of how many jobs run at once, and in what
// order their output comes.
func (o *runOptions) addJobsFlags(f *pflag.FlagSet) {
	f.StringVarP(&o.Jobs, "jobs", "j", "", "run `N` jobs at once: N, N% of the CPUs, +N or -N CPUs, 0 for as many as possible (default: the number of CPUs)")
	f.StringVarP(&o.Jobs, "max-procs", "P", "", "the same as -j `N`")
	f.BoolVarP(&o.KeepOrder, "keep-order", "k", false, "print the jobs' output in input order")
}

// addInputFlags adds the flags of inputs: where they come from, how they
// are split and how many go to a job, and how they make the command.
func (o *runOptions) addInputFlags(f *pflag.FlagSet) {
	f.StringArrayVarP(&o.ArgFiles, "arg-file", "a", nil, "read inputs from `FILE` (- is standard input); may be repeated")
	f.BoolVarP(&o.Null, "null", "0", false, "inputs end with a NUL byte, not a newline")
	f.StringVarP(&o.Delim, "delimiter", "d", "", "inputs end with `DELIM` (\\n, \\t, \\0 and \\xHH are understood)")
	f.StringVar(&o.ColSep, "colsep", "", "split each input into columns {1}, {2}, ... at `REGEX`")
	f.StringVar(&o.Trim, "trim", "", "trim white space from inputs (columns with --colsep): `n`, l, r or lr (default: lr with --colsep, else n)")
	f.BoolVarP(&o.NoRunIfEmpty, "no-run-if-empty", "r", false, "skip the inputs that are empty or only white space")
	f.StringVarP(&o.EOF, "eof", "E", "", "end each input source at a value equal to `STR`")
	f.StringVar(&o.ArgSep, "arg-sep", ":::", "start a source of values with `SEP` instead of :::")
	f.StringVar(&o.ArgFileSep, "arg-file-sep", "::::", "start a source of files with `SEP` instead of ::::")
	f.IntVarP(&o.MaxArgs, "max-args", "n", 0, "give each job up to `N` inputs")
	f.IntVarP(&o.ExactArgs, "max-replace-args", "N", 0, "give each job `N` inputs (with --pipe: N records)")
	f.IntVarP(&o.MaxLines, "max-lines", "L", 0, "give each job `N` input lines (as -n N)")
	f.VarPF(lValue{&o.MaxLines}, "max-lines-l", "l", "-l[N]: as -L N, N 1 if not given or 0 (GNU parallel's old form)").NoOptDefVal = "1"
	f.MarkHidden("max-lines-l")
	f.BoolVar(&o.Xargs, "xargs", false, "give each job as many inputs as its command line holds, as xargs does")
	f.BoolVarP(&o.Multi, "multi-args", "m", false, "as --xargs, spreading the inputs evenly over the jobs at once")
	f.BoolVarP(&o.Context, "context-replace", "X", false, "as -m, repeating each word that holds {} for every input (x{}y: x1y x2y)")
	f.IntVarP(&o.MaxChars, "max-chars", "s", 0, "make command lines at most `N` characters long (default: what the system allows)")
	f.BoolVar(&o.Link, "link", false, "pair input sources value by value instead of combining them")
	f.StringVarP(&o.ReplaceStr, "replace", "I", "", "use `STR` instead of {} for the whole input")
	f.StringVarP(&o.ReplaceStr, "replace-i", "i", "", "-i[STR]: as -I STR, {} if not given (GNU parallel's old form)")
	f.Lookup("replace-i").NoOptDefVal = "{}"
	f.MarkHidden("replace-i")
	f.BoolVar(&o.Plus, "plus", false, "add GNU parallel's --plus replacement strings: {+/} {+.} {..} {##} {0#} {:-str} {#re} {%re} {/re/str} ... (see above)")
	f.StringVar(&o.Header, "header", "", "the first value of each input source (with --colsep: its first line) names its inputs, as {name}; with --pipe, the first `N` lines (: for 1) start every block")
	f.BoolVar(&o.Raw, "raw", false, "substitute inputs unquoted, as shell code (unsafe with untrusted input)")
	f.BoolVarP(&o.Quote, "quote", "q", false, "keep each word of COMMAND one word, whatever it holds (it is quoted for the shell)")
	f.BoolVar(&o.ShellQuote, "shellquote", false, "print each input quoted for the shell, and run nothing")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the commands instead of running them")
	f.BoolVarP(&o.Verbose, "verbose", "t", false, "print each command on standard error as it starts")
	f.BoolVarP(&o.Echo, "print-command", "v", false, "print each command on standard output, before its output (GNU parallel's -v)")
	f.BoolVar(&o.Shuf, "shuf", false, "run the jobs in random order (their numbers stay those of the input)")
}

// addControlFlags adds the flags of how the jobs run: their timing,
// retries, stop conditions and job log.
func (o *runOptions) addControlFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Delay, "delay", "", "wait `SECS` between job starts")
	f.StringVar(&o.Timeout, "timeout", "", "kill a job after `SECS`, or after N% of the median run time of the jobs so far")
	f.StringVar(&o.Termseq, "termseq", "TERM,200,TERM,100,TERM,50,KILL,25", "kill a job with these signals, each followed by its wait in ms (`SEQ`)")
	f.IntVar(&o.Retries, "retries", 0, "run a failing job up to `N` times in all")
	f.StringVar(&o.Halt, "halt", "", "stop on failures or successes: `never`, now|soon,fail|success|done=N|N% (N% of the jobs finished so far)")
	f.StringVar(&o.Joblog, "joblog", "", "log every finished job to `FILE` in GNU parallel's format (+FILE appends)")
	f.BoolVar(&o.Resume, "resume", false, "with --joblog: skip the jobs already in the job log")
	f.BoolVar(&o.ResumeFailed, "resume-failed", false, "with --joblog: skip the jobs that succeeded, run the failed ones again")
	f.BoolVar(&o.RetryFailed, "retry-failed", false, "with --joblog: run the failed jobs of the job log again, ignoring the command line")
}

// addOutputFlags adds the flags of where the jobs' output goes.
func (o *runOptions) addOutputFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.Tag, "tag", false, "prefix each output line with the job's inputs")
	f.StringVar(&o.TagString, "tagstring", "", "prefix each output line with `STR` (replacement strings allowed)")
	f.BoolVar(&o.LineBuffer, "line-buffer", false, "print output line by line as jobs write it")
	f.BoolVarP(&o.Ungroup, "ungroup", "u", false, "let jobs write straight to the output, mixed")
	f.BoolVar(&o.Bar, "bar", false, "show a progress bar on a terminal")
	f.BoolVar(&o.ETA, "eta", false, "show the estimated time left on a terminal")
	f.BoolVar(&o.Progress, "progress", false, "show jobs running and done on a terminal")
}

// addPipeFlags adds the flags of --pipe: standard input cut into blocks.
func (o *runOptions) addPipeFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.Pipe, "pipe", false, "split standard input into blocks and give each job one on its standard input")
	f.BoolVar(&o.PipePart, "pipepart", false, "as --pipe, cutting the files of -a instead of standard input")
	f.StringVar(&o.GroupBy, "group-by", "", "with --pipe: keep the lines with the same value in column `COL` (a number, or a --header name) in one record (columns split at --colsep, else at tabs)")
	f.BoolVar(&o.RoundRobin, "round-robin", false, "with --pipe: start -j jobs once, and give each block to one of them as it reads (with -k: in turn)")
	f.BoolVar(&o.Cat, "cat", false, "with --pipe: give each job its block in a temporary file, named by {}, instead of on its standard input")
	f.BoolVar(&o.Fifo, "fifo", false, "with --pipe: give each job its block through a named pipe, named by {}, instead of on its standard input")
	f.StringVar(&o.Block, "block", "1M", "with --pipe: blocks of about `SIZE` bytes (K, M, G: powers of 1024; k, m, g: of 1000)")
	f.StringVar(&o.RecStart, "recstart", "", "with --pipe: records start with `STR`")
	f.StringVar(&o.RecEnd, "recend", "\n", "with --pipe: records end with `STR`")
}

// addResultFlags adds the flags of output kept in files, the terminal,
// niceness, the environment and the shell.
func (o *runOptions) addResultFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Results, "results", "", "put each job's output in files instead of printing it: a folder `NAME` (GNU parallel's tree: NAME/1/input/stdout, stderr, seq), a NAME with replacement strings (its stdout; NAME.err, NAME.seq), or a table NAME.csv, .tsv or .json")
	f.StringVar(&o.Results, "res", "", "the same as --results `NAME`")
	f.BoolVar(&o.Files, "files", false, "print the name of a file holding each job's output instead of the output (in a temporary folder, or --results')")
	f.BoolVar(&o.TTY, "tty", false, "give the jobs the terminal as standard input; -j1 and --ungroup unless -j or --line-buffer is given")
	f.BoolVarP(&o.OpenTTY, "open-tty", "o", false, "give the jobs the terminal as standard input")
	f.IntVar(&o.Nice, "nice", 0, "run the jobs with niceness `N` (on the workers too, with --queue)")
	f.StringArrayVar(&o.Env, "env", nil, "with --queue: give the jobs the value the variable or exported function `NAME` has here; may be repeated (here the jobs have herd's whole environment)")
	f.StringVar(&o.Shell, "shell", "", "the `SHELL` that runs each command (default: $PARALLEL_SHELL, else the shell herd runs from, else /bin/sh)")
}

// addHostFlags adds the flags of -S: the jobs on other hosts, and what
// goes with them.
func (o *runOptions) addHostFlags(f *pflag.FlagSet) {
	f.StringArrayVarP(&o.sshLogins, "sshlogin", "S", nil, "run the jobs on these hosts, through ssh: `[N/][user@]host[:port]`[,...], : for this machine (see above)")
	f.StringArrayVar(&o.sshLoginFiles, "sshloginfile", nil, "read the hosts of -S from `FILE`, one a line")
	f.StringArrayVar(&o.sshLoginFiles, "slf", nil, "the same as --sshloginfile `FILE`")
	f.StringVar(&o.ssh, "ssh", "ssh", "with -S: reach the hosts with this `COMMAND`")
	f.StringVar(&o.sshDelay, "sshdelay", "", "with -S: wait `SECS` between reaching one host and the next")
	f.BoolVarP(&o.controlMaster, "controlmaster", "M", false, "accepted for GNU parallel's command lines: herd keeps one ssh session to each host for the whole run, which is what -M saves")
	f.BoolVar(&o.filterHosts, "filter-hosts", false, "accepted for GNU parallel's command lines: herd says which hosts it cannot reach, and runs the jobs on the others")
	f.BoolVar(&o.Transfer, "transfer", false, "with -S or --queue: take each job's input file to the host that runs it (as --transferfile {})")
	f.StringArrayVar(&o.TransferFiles, "transferfile", nil, "with -S or --queue: take `FILE` (replacement strings allowed) to the host that runs the job")
	f.StringArrayVar(&o.TransferFiles, "tf", nil, "the same as --transferfile `FILE`")
	f.StringArrayVar(&o.ReturnFiles, "return", nil, "with -S or --queue: bring `FILE` (replacement strings allowed) back from the host that ran the job")
	f.BoolVar(&o.Cleanup, "cleanup", false, "with -S or --queue: remove the files transferred and returned from the host after each job")
	f.StringArrayVar(&o.Trc, "trc", nil, "the same as --transfer --return `FILE` --cleanup")
	f.StringArrayVar(&o.BaseFiles, "basefile", nil, "with -S or --queue: take `FILE` to each host once, before its first job of the run")
	f.StringVar(&o.Workdir, "workdir", "", "run the jobs in `DIR`, made if need be (replacement strings allowed; on a host, relative to the login folder): . for this folder (on a host, the same path in the home folder), ... for a new folder for each job under ~/.parallel/tmp")
	f.StringVar(&o.Workdir, "wd", "", "the same as --workdir `DIR`")
	f.StringArrayVar(&o.BaseFiles, "bf", nil, "the same as --basefile `FILE`")
}

// addQueueFlags adds the flags of --queue: the jobs on the workers of a queue.
func (o *runOptions) addQueueFlags(f *pflag.FlagSet) {
	o.conn.add(f, false)
	f.Lookup("queue").Usage = "run the jobs on the herd work processes of the queue at `URL`[,URL...] (see above)"
	f.StringVar(&o.queueName, "queue-name", "default", "with --queue: put the jobs on the queue of this `NAME`")
	f.StringVar(&o.Attach, "attach", "", "show the output of the earlier run `ID` (as it finishes) of --queue, or of -S on this machine, instead of starting one")
	f.BoolVar(&o.Detach, "detach", false, "with --queue, or -S without it: put the jobs on the queue, print the run's id alone, and exit without waiting for them (-S: the run's keeper sees them done)")
	f.StringSliceVar(&o.After, "after", nil, "with --queue: start no job before every job of the earlier runs `RUN`[,RUN...] has succeeded; if one fails, this run's jobs do not run")
	f.StringVar(&o.AfterEach, "after-each", "", "with --queue: start job N once job N of the earlier run `RUN` has succeeded (the runs must have as many jobs)")
	f.StringVar(&o.Key, "key", "", "with --queue: each job's key, for the queue's --key-concurrency limit (herd queue limit); replacement strings allowed, as `STR` {1}")
}

// gnuNames maps a long option's name as GNU parallel reads it to herd
// run's: another name of the option, or a prefix that names one option
// alone (--joblo, --keep). It is set once every option is defined, and a
// name is first taken as it is.
func gnuNames(f *pflag.FlagSet, name string) pflag.NormalizedName {
	if to, ok := run.GNUAliases[name]; ok {
		return pflag.NormalizedName(to)
	}
	exact := false
	found := map[string]bool{}
	f.VisitAll(func(fl *pflag.Flag) {
		switch {
		case fl.Name == name:
			exact = true
		case strings.HasPrefix(fl.Name, name) && !fl.Hidden:
			found[fl.Name] = true
		}
	})
	for alias, to := range run.GNUAliases {
		if strings.HasPrefix(alias, name) {
			found[to] = true
		}
	}
	if exact || len(found) != 1 || len(name) < 2 {
		return pflag.NormalizedName(name)
	}
	for to := range found {
		name = to
	}
	return pflag.NormalizedName(name)
}

// gnuAttached rewrites herd run's arguments so that GNU parallel's -l[N]
// and -i[STR], whose value is optional, parse as it reads them: -l2 as
// --max-lines-l=2, -iX as --replace-i=X; and refuses GNU parallel's
// options that herd run does not take, saying why. It looks at the options
// before the command only.
func gnuAttached(f *pflag.FlagSet, args []string) ([]string, error) {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if why, ok := run.NotGNU[name]; ok && strings.HasPrefix(a, "--") && f.Lookup(name) == nil {
			return nil, fmt.Errorf("--%s is GNU parallel's, and herd run does not take it: %s", name, why)
		}
		switch {
		case a == "--" || a == "-" || !strings.HasPrefix(a, "-"):
			return append(out, args[i:]...), nil // the command, or the inputs, from here
		case len(a) > 2 && a[1] == 'l':
			a = "--max-lines-l=" + a[2:]
		case len(a) > 2 && a[1] == 'i':
			a = "--replace-i=" + a[2:]
		// As GNU parallel reads them too: -l takes the next word if it is
		// a number, and -i if it is not an option.
		case a == "-l" && i+1 < len(args) && args[i+1] != "" && strings.Trim(args[i+1], "0123456789") == "":
			i++
			a = "--max-lines-l=" + args[i]
		case a == "-i" && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-"):
			i++
			a = "--replace-i=" + args[i]
		case takesValue(f, a) && i+1 < len(args):
			out = append(out, a)
			i++
			a = args[i] // its value
		}
		out = append(out, a)
	}
	return out, nil
}

// takesValue reports whether the option a (one word, -x or --name) takes
// the next word as its value.
func takesValue(f *pflag.FlagSet, a string) bool {
	var fl *pflag.Flag
	switch {
	case strings.HasPrefix(a, "--") && !strings.Contains(a, "="):
		fl = f.Lookup(a[2:])
	case len(a) == 2:
		fl = f.ShorthandLookup(a[1:])
	}
	return fl != nil && fl.NoOptDefVal == ""
}

// lValue is -l[N]: -L N, where N is 1 if not given, or given as 0.
type lValue struct{ n *int }

func (v lValue) String() string { return strconv.Itoa(*v.n) }
func (v lValue) Type() string   { return "int" }
func (v lValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want a number of lines, not %q", s)
	}
	*v.n = max(n, 1)
	return nil
}

// config fills in the options only the command line and the environment
// know, and makes the run's configuration.
func (o *runOptions) config(args []string, changed func(string) bool) (*run.Config, error) {
	o.Queued, o.OnHosts = o.conn.url != "", o.onHosts()
	o.QueueLogin = o.conn.used(changed) || changed("queue-name")
	o.QueueCredentials = o.conn.user != "" || o.conn.password != "" || o.conn.creds != "" || o.conn.tlsCA != "" || o.conn.tlsCert != ""
	if o.Shell == "" {
		o.Shell = defaultShell(o.Queued || o.OnHosts)
	}
	cfg, err := o.Options.Config(args, changed)
	if err != nil {
		return nil, err
	}
	for _, name := range o.Env {
		if v, ok := os.LookupEnv(name); ok {
			cfg.Env = append(cfg.Env, name+"="+v)
		} else if f, ok := os.LookupEnv("BASH_FUNC_" + name + "%%"); ok {
			cfg.Env = append(cfg.Env, "BASH_FUNC_"+name+"%%="+f)
		} // unset here: unset there, as GNU parallel has it
	}
	return cfg, nil
}

// onHosts reports whether the jobs run on the hosts of -S.
func (o runOptions) onHosts() bool { return len(o.sshLogins)+len(o.sshLoginFiles) > 0 }

// defaultShell is the shell that runs the jobs when --shell is not given,
// as GNU parallel picks it: $PARALLEL_SHELL; else the shell herd was
// started from, so that the user's functions (export -f) and syntax work;
// else $SHELL; else /bin/sh. A shell that does not read POSIX command lines
// (fish, csh) is passed over: herd quotes inputs for a POSIX shell. Jobs on
// a queue run on other machines, where /bin/sh is what is sure to be.
func defaultShell(queued bool) string {
	if s := os.Getenv("PARALLEL_SHELL"); s != "" || queued {
		return cmp.Or(s, "/bin/sh")
	}
	parent, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", os.Getppid()))
	for _, sh := range []string{parent, os.Getenv("SHELL")} {
		switch filepath.Base(sh) {
		case "bash", "dash", "sh", "zsh", "ksh", "ksh93", "mksh", "yash":
			return sh
		}
	}
	return "/bin/sh"
}
