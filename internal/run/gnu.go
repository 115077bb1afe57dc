package run

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/goherd/herd/internal/command"
)

// GNU parallel's syntax for the values of its options, which herd run and
// herd work read: -j, --halt, --termseq, sizes, seconds, delimiters.

// HeaderLines parses --header: : for one line, or a number of lines.
func HeaderLines(s string) (int, error) {
	if s == ":" || s == `.*\n` {
		return 1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("--header %q: want : (the first line) or a number of lines", s)
	}
	return n, nil
}

// ParseTermSeq parses --termseq: signals, by name or number, each
// followed by how many milliseconds to wait for the job to end.
func ParseTermSeq(s string) ([]command.Term, error) {
	bad := fmt.Errorf("--termseq %q: want signals and waits in ms, like TERM,200,TERM,100,KILL,25", s)
	fields := strings.Split(s, ",")
	if len(fields)%2 != 0 {
		return nil, bad
	}
	var seq []command.Term
	for i := 0; i < len(fields); i += 2 {
		sig, ok := signalNamed(fields[i])
		ms, err := strconv.Atoi(fields[i+1])
		if !ok || err != nil || ms < 0 {
			return nil, bad
		}
		seq = append(seq, command.Term{Signal: sig, Wait: time.Duration(ms) * time.Millisecond})
	}
	return seq, nil
}

// signalNamed returns the signal of a name (TERM or SIGTERM) or number.
func signalNamed(name string) (syscall.Signal, bool) {
	if n, err := strconv.Atoi(name); err == nil {
		return syscall.Signal(n), n > 0 && n < 65
	}
	sig, ok := map[string]syscall.Signal{
		"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "KILL": syscall.SIGKILL,
		"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "ALRM": syscall.SIGALRM, "TERM": syscall.SIGTERM,
		"CONT": syscall.SIGCONT, "STOP": syscall.SIGSTOP,
	}[strings.TrimPrefix(strings.ToUpper(name), "SIG")]
	return sig, ok
}

// ParseJobs parses -j.
func ParseJobs(s string, cpus int) (int, error) {
	bad := fmt.Errorf("-j %q: want N, N%%, +N, -N or 0", s)
	switch {
	case s == "":
		return cpus, nil
	case strings.HasSuffix(s, "%"):
		pc, err := strconv.ParseFloat(s[:len(s)-1], 64)
		if err != nil || pc <= 0 || math.IsInf(pc, 0) {
			return 0, bad
		}
		return max(int(float64(cpus)*pc/100), 1), nil
	case s[0] == '+' || s[0] == '-':
		n, err := strconv.Atoi(s[1:])
		if err != nil || n < 0 {
			return 0, bad
		}
		if s[0] == '-' {
			n = -n
		}
		return max(cpus+n, 1), nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, bad
	}
	if n == 0 {
		return 1000, nil // as many as possible: bounded by the processes a user may start
	}
	return n, nil
}

// ParseSeconds parses a duration given in seconds ("2.5") or with a unit
// ("1m30s"). Empty means zero.
func ParseSeconds(flag, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if secs, err := strconv.ParseFloat(s, 64); err == nil && secs >= 0 && secs < 1e9 {
		return time.Duration(secs * float64(time.Second)), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return d, nil
	}
	return 0, fmt.Errorf("%s %q: want seconds, like 2.5 or 1m30s", flag, s)
}

// ParseSize parses a size flag such as --block, as GNU parallel reads it:
// bytes with an optional K, M, G or T (powers of 1024) or k, m, g or t
// (powers of 1000).
func ParseSize(flag, s string) (int64, error) {
	bad := fmt.Errorf("%s %q: want a size such as 512K or 10M", flag, s)
	if s == "" {
		return 0, bad
	}
	mult := 1.0
	if i := strings.IndexByte("KMGT", s[len(s)-1]); i >= 0 {
		mult = math.Pow(1024, float64(i+1))
	} else if i := strings.IndexByte("kmgt", s[len(s)-1]); i >= 0 {
		mult = math.Pow(1000, float64(i+1))
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 1 || n*mult > 1<<40 {
		return 0, bad
	}
	return int64(n * mult), nil
}

// Unescape interprets \n, \t, \r, \0, \\ and \xHH in a delimiter.
func Unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '0':
			b.WriteByte(0)
		case '\\':
			b.WriteByte('\\')
		case 'x':
			if i+3 > len(s) {
				return "", errors.New(`\x needs two hex digits`)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", errors.New(`\x needs two hex digits`)
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String(), nil
}

// ParseHalt parses --halt.
func ParseHalt(s string) (Halt, error) {
	bad := fmt.Errorf("--halt %q: want never, or now|soon,fail|success|done=N|N%% (like now,fail=1)", s)
	switch s {
	case "", "never", "0":
		return Halt{}, nil
	case "1":
		return Halt{On: "fail", Count: 1, Text: s}, nil
	case "2":
		return Halt{Now: true, On: "fail", Count: 1, Text: s}, nil
	}
	when, cond, ok := strings.Cut(s, ",")
	if !ok || (when != "now" && when != "soon") {
		return Halt{}, bad
	}
	on, val, ok := strings.Cut(cond, "=")
	if !ok || (on != "fail" && on != "success" && on != "done") {
		return Halt{}, bad
	}
	h := Halt{Now: when == "now", On: on, Text: s}
	if strings.HasSuffix(val, "%") {
		pc, err := strconv.ParseFloat(val[:len(val)-1], 64)
		if err != nil || pc <= 0 || pc > 100 {
			return Halt{}, bad
		}
		h.Percent = pc
		return h, nil
	}
	n, err := strconv.Atoi(val)
	if err != nil || n < 1 {
		return Halt{}, bad
	}
	h.Count = n
	return h, nil
}

// GNUAliases are the other names GNU parallel 20221122 takes for herd
// run's options.
var GNUAliases = map[string]string{
	"linebuffer": "line-buffer", "lb": "line-buffer", "dryrun": "dry-run", "groupby": "group-by",
	"halt-on-error": "halt", "jl": "joblog", "xapply": "link", "block-size": "block",
}

// NotGNU says, for each option of GNU parallel 20221122 that herd run does
// not take, why, and what to use instead.
var NotGNU = func() map[string]string {
	const (
		noTemp    = "herd run writes no temporary files: --files and --results name where outputs go"
		replaces  = "the --*replace options are not taken: "
		noColour  = "herd run prints no colours"
		failed    = noColour + "; --tag or --joblog show which jobs failed"
		recSep    = "--pipe keeps the record separators: strip them in the command"
		inMemory  = "herd run keeps each job's output in memory, not in files to compress"
		waits     = "--pipe waits for each block as long as it takes"
		threads   = "-j counts CPU threads, as nproc does: give -j N"
		folder    = replaces + "{//} is the input's folder"
		base      = replaces + "{/} is the input's basename"
		extension = replaces + "{.} is the input without its extension"
		baseNoExt = replaces + "{/.} is the basename without its extension"
	)
	return map[string]string{
		"tmpdir": noTemp, "tempdir": noTemp,
		"dnr": folder, "dirnamereplace": folder,
		"bnr": base, "basenamereplace": base,
		"er": extension, "extensionreplace": extension,
		"bner": baseNoExt, "basenameextensionreplace": baseNoExt,
		"seqreplace":  replaces + "{#} is the job's number",
		"slotreplace": replaces + "{%} is the job's slot",
		"colour":      noColour, "color": noColour,
		"colour-failed": failed, "color-failed": failed, "cf": failed,
		"ctag":       noColour + ": use --tag",
		"ctagstring": noColour + ": use --tagstring",
		"rrs":        recSep, "remove-rec-sep": recSep, "removerecsep": recSep,
		"regexp":           "--recstart and --recend are plain strings in herd run",
		"skip-first-line":  "to skip a header line, use --header 1 (its values name the columns) or tail -n +2",
		"show-limits":      "herd run has no limit of its own on a command line's length but the system's; -s sets one",
		"process-slot-var": "each job has its slot in $PARALLEL_JOBSLOT",
		"compress":         inMemory, "compress-program": inMemory, "decompress-program": inMemory,
		"tee":          "--pipe gives each block to one job: use tee in the command",
		"bin":          "--round-robin and --group-by cover what --bin is for",
		"blocktimeout": waits, "bt": waits,
		"number-of-cpus":            "nproc says how many CPUs there are",
		"number-of-sockets":         "lscpu says how many sockets there are",
		"number-of-cores":           "nproc says how many cores there are",
		"number-of-threads":         "nproc says how many threads there are",
		"use-cpus-instead-of-cores": threads, "use-cores-instead-of-threads": threads, "use-sockets-instead-of-threads": threads,
	}
}()
