package run

import (
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goherd/herd/internal/command"
	"github.com/goherd/herd/internal/input"
	"github.com/goherd/herd/internal/replace"
)

// Config is a validated herd run: what to run, how, and how to show it.
// cmd/herd makes it from the command line.
type Config struct {
	// Template is the command; nil for a run with no jobs of its own (one
	// attached to, whose jobs the executor knows).
	Template *replace.Template
	Raw      bool   // substitute inputs unquoted
	Shell    string // the shell that runs each command line
	Input    input.Config
	Pipe     *Pipe // --pipe: jobs read blocks of standard input
	// Pass gives each job its --pipe block in a file named by {}: "cat"
	// (--cat) or "fifo" (--fifo), instead of on its standard input.
	Pass   string
	Shuf   bool
	DryRun bool
	// ShellQuote prints each job's inputs quoted for the shell instead of
	// running anything (--shellquote).
	ShellQuote bool
	// Multi gives each job as many inputs as its command line holds:
	// "xargs" (--xargs), "m" (-m) or "X" (-X, with a Template from
	// replace.ParseContext); with "m" and "X", the inputs are spread
	// evenly over the Jobs slots. MaxChars caps a command line's length
	// (-s); zero means what the system allows in one argument.
	Multi    string
	MaxChars int
	// NoArgs consumes an input per job without passing it on (-n0);
	// SkipEmpty drops the jobs whose inputs are all empty or blank (-r).
	NoArgs    bool
	SkipEmpty bool

	// Joblog is the job log's path, if any; AppendLog keeps its rows.
	// Resume skips the jobs it has, ResumeFailed those that succeeded;
	// RetryFailed runs its failed jobs again, with no input.
	Joblog       string
	AppendLog    bool
	Resume       bool
	ResumeFailed bool
	RetryFailed  bool

	Jobs           int           // jobs at once, here
	Delay          time.Duration // between job starts
	Timeout        time.Duration // each attempt's limit
	TimeoutPercent float64       // or this percentage of the median run time
	Attempts       int           // attempts of a failing job, 1 or more
	Halt           Halt
	// TermSeq is how a job is killed (a time limit, --halt now, a signal
	// to herd run); nil means GNU parallel's default (command.DefaultTermSeq).
	TermSeq []command.Term
	Nice    int      // the jobs' niceness (--nice), if not 0
	Workdir Workdir  // the folder the jobs run in (--workdir)
	Env     []string // NAME=value to set in the jobs' environment (--env: for the workers of a queue)
	TTY     bool     // give the jobs the terminal as standard input (--tty)

	// Files that go with the jobs to the hosts that run them, and back:
	// each job's Transfer files (--transfer, --transferfile), expanded for
	// it, go before it runs, its Return files come back after, BaseFiles
	// go once to each host (--basefile); Cleanup removes them all from the
	// host after. Jobs run here have their files already: these do nothing.
	Transfer  []*replace.Template
	Return    []*replace.Template
	BaseFiles []string
	Cleanup   bool

	KeepOrder  bool              // -k
	Verbose    bool              // print each command on standard error as it starts (-t)
	Echo       bool              // print each command on standard output, before its output (-v)
	Tag        bool              // prefix lines with the inputs
	TagString  string            // or with this, expanded
	TagTmpl    *replace.Template // TagString parsed
	LineBuffer bool
	Ungroup    bool
	Bar        bool
	ETA        bool
	Progress   bool
	// Results, if set, takes each job's output instead of the terminal
	// (--results, --files).
	Results *Results
}

// Pipe says how --pipe cuts standard input into blocks.
type Pipe struct {
	Block    int64 // about this many bytes a block
	Records  int   // or this many records, if not 0
	RecStart string
	RecEnd   string // with RecStart empty too, records are bytes: blocks are Block bytes
	Header   int    // lines of the input that start every block (--header)
	// Part cuts these files instead of standard input (--pipepart), each
	// on its own: a block ends at the first record end after Block bytes,
	// as GNU parallel cuts them. With Parts, Block is each file's size
	// over Parts times the jobs at once (--block -N).
	Part  []string
	Parts int
	// GroupBy, if set, makes the lines with the same value in this column
	// (1 is the first; or the one GroupName names in the header) one
	// record, so that no block splits them (--group-by); GroupSep splits
	// the columns.
	GroupBy   int
	GroupName string
	GroupSep  *regexp.Regexp
	// RoundRobin starts Jobs jobs once, and writes each block to the
	// standard input of one that takes it (--round-robin).
	RoundRobin bool
}

// Halt is a parsed --halt: when to stop the run, and on what.
type Halt struct {
	Now     bool    // kill running jobs, rather than let them finish (soon)
	On      string  // "fail", "success", "done", or "" for never
	Count   int     // stop after this many...
	Percent float64 // ...or this percentage of the jobs finished so far
	Text    string  // as given, for messages
}

// A Job is one command to run.
type Job struct {
	Seq   int
	Args  []string
	Line  string // expanded, with SlotText for {%}
	Stdin []byte // --pipe: the block for its standard input
	// Stream is the job's standard input with --round-robin: it gets
	// blocks as it reads them. Such a job runs once, with no retry.
	Stream *os.File
}

// slotMarker stands for the job slot in a command line expanded before the
// job has a slot: the slot is put in when the job starts, and a job log row
// may have been written with any slot. SlotText is how it reads.
const slotMarker = math.MinInt

// SlotText stands for {%} in a Job's Line.
var SlotText = strconv.Itoa(slotMarker)

// PathText stands for the name of the file that holds a job's block with
// --cat and --fifo, which exists only while the job runs.
var PathText = strconv.Itoa(slotMarker + 1)

// WithSlot returns a job's line as it runs in slot.
func WithSlot(line string, slot int) string {
	return strings.ReplaceAll(line, SlotText, strconv.Itoa(slot))
}

// Shown returns a job's line as run in slot, as herd prints it and logs
// it: with {} for the file of --cat and --fifo, which is gone once the job
// has ended.
func Shown(line string, slot int) string {
	return strings.ReplaceAll(WithSlot(line, slot), PathText, "{}")
}

// An Outcome is what became of a job.
type Outcome struct {
	Job      Job
	Skipped  bool   // never started: the run was stopping
	Line     string // the command line as run, with its slot
	Result   command.Result
	Slot     int
	Host     string // where it ran, if not here
	Stdout   Spool  // grouped output
	Stderr   Spool
	Received int64 // bytes of standard output
}
