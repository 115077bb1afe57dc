package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/goherd/herd/internal/testutil"
)

// updateGNU rewrites testdata/gnu-parallel.json from GNU parallel's runs.
var updateGNU = flag.Bool("update-gnu", false, "record GNU parallel's outputs in testdata/gnu-parallel.json")

// herd run gives what GNU parallel gives, byte for byte, for the options
// the two share: output, error output and exit status, for each case. What
// GNU parallel 20221122 gives is kept in testdata/gnu-parallel.json, so
// that the test runs anywhere; where GNU parallel is installed, and always
// in CI (HERD_GNU_PARALLEL=required, which .ci/run sets after installing
// Debian's parallel), each case runs it too and checks that record.
func TestLikeGNUParallel(t *testing.T) {
	t.Parallel()
	const record = "testdata/gnu-parallel.json"
	gnu, err := exec.LookPath("parallel")
	if err != nil && (os.Getenv("HERD_GNU_PARALLEL") == "required" || *updateGNU) {
		t.Fatalf("GNU parallel is needed to compare herd run with: %v (apt-get install parallel)", err)
	}
	wants := map[string]string{}
	if b, err := os.ReadFile(record); err == nil {
		if err := json.Unmarshal(b, &wants); err != nil {
			t.Fatalf("%s: %v", record, err)
		}
	} else if !*updateGNU {
		t.Fatal(err)
	}
	herd := herdBinary(t)
	dir := t.TempDir()
	files := filepath.Join(dir, "files")
	if err := os.WriteFile(files, []byte("f1\nf2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	table := filepath.Join(dir, "table")
	if err := os.WriteFile(table, []byte("name\tfile\nx\ta/b.tar.gz\ny\tc.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ten := filepath.Join(dir, "ten")
	if err := os.WriteFile(ten, []byte(seq(10)), 0o644); err != nil {
		t.Fatal(err)
	}
	names := []string{".bashrc", "a.b.c.d", "dir.x/file.tar.gz", "aAa.tar.z", "0", ""}
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
	}{
		{"tag joins the inputs with a space", []string{"-k", "--tag", "echo", ":::", "a", "b", ":::", "1", "2"}, ""},
		{"-d splits the values of ::: too", []string{"-k", "-d", ",", "echo", ":::", "a,b", "c", ":::", "1,2"}, ""},
		{"-d splits ::: before --header reads the names", []string{"-k", "-d", ",", "--header", ":", "echo", "{x}", ":::", "x,a,b"}, ""},
		{"-d keeps an empty last value of :::", []string{"-k", "-d", ",", "echo", "[{}]", ":::", "a,"}, ""},
		{"a new line splits a value of :::", []string{"-k", "echo", "[{}]", ":::", "a\nb", "c\n"}, ""},
		{"--header without --colsep splits columns on tabs", []string{"-k", "--header", ":", "echo", "[{a}]-[{b}]-[{}]", "::::", "-"}, "a\tb\n 1 \t2\n3\t4\n"},
		{"--header without --colsep, one column", []string{"-k", "--header", ":", "echo", "[{a}]"}, "a\n1 2\n"},
		{"-v prints each command before its output", []string{"-v", "-k", "echo {}; echo err{} >&2", ":::", "a", "b"}, ""},
		{"-v with --tag tags the command too", []string{"-v", "-k", "--tag", "echo", ":::", "a", "b"}, ""},
		{"-v with --line-buffer prints the command as the job starts", []string{"-v", "--lb", "-j1", "echo", ":::", "a", "b"}, ""},
		{"-v with --dry-run prints each command once", []string{"-v", "--dry-run", "-k", "echo", ":::", "a", "b"}, ""},
		{"-i before an option is -I {}", []string{"-i", "-k", "echo", "x{}", ":::", "a", "b"}, ""},
		{"-i takes the next word", []string{"-k", "-i", "Q", "echo", "xQ", ":::", "a"}, ""},
		{"-l takes the next word if a number", []string{"-k", "-l", "2", "echo"}, "a\nb\nc\n"},
		{"-iSTR is -I STR", []string{"-k", "-iQ", "echo", "xQ", ":::", "a"}, ""},
		{"-l0 is -l is -L 1", []string{"-k", "-l0", "echo"}, "a\nb\nc\n"},
		{"-l2 is -L 2", []string{"-k", "-l2", "echo"}, "a\nb\nc\n"},
		{"--dryrun and --lb, other names of --dry-run and --line-buffer", []string{"-k", "--dryrun", "--lb", "echo", ":::", "a"}, ""},
		{"--linebuffer and --groupby", []string{"-k", "--linebuffer", "--pipe", "--groupby", "1", "--colsep", ",", "wc", "-l"}, "a,1\na,2\nb,3\n"},
		{"no command: each input is a command line", []string{"-k", ":::", "echo a", "echo b; echo c"}, ""},
		{"no command: the lines of standard input", []string{"-k"}, "echo 1\necho 2 | tr 2 X\n"},
		{"no command, -n 2: the inputs joined", []string{"-k", "-n", "2", ":::", "echo", "x", "echo", "y"}, ""},
		{"no command, -X", []string{"-k", "-j1", "-X", ":::", "echo", "a", "b"}, ""},
		{"no command: the commands' exit statuses", []string{"-k", ":::", "exit 3", "true", "echo $((6*7))"}, ""},
		{":::+ cuts the longer source", []string{"-k", "echo", ":::", "a", "b", "c", ":::+", "1", "2"}, ""},
		{"--link repeats the shorter", []string{"-k", "--link", "echo", ":::", "a", "b", "c", ":::", "1", "2"}, ""},
		{"-N0 passes no input", []string{"-k", "-N0", "echo", "x", ":::", "1", "2", "3"}, ""},
		{"-n0 too", []string{"-k", "-n0", "echo", "x", ":::", "1", "2", "3"}, ""},
		{"-E ends the input", []string{"-k", "-E", "b", "echo", ":::", "a", "b", "c"}, ""},
		{"-E in standard input", []string{"-k", "-E", "STOP", "echo"}, "a\nb\nSTOP\nc\n"},
		{"--arg-sep", []string{"-k", "--arg-sep", ",,", "echo", ",,", "a", "b"}, ""},
		{"--arg-file-sep", []string{"-k", "--arg-file-sep", ",,,,", "echo", ",,,,", files}, ""},
		{"an empty ::: runs nothing", []string{"echo", ":::"}, ""},
		{"an empty ::: with another is one empty value", []string{"-k", "echo", "x{1}y{2}z{3}", ":::", "a", "b", ":::", ":::", "c"}, ""},
		{"an empty file with another too", []string{"-k", "echo", "x{1}y{2}z", "::::", "/dev/null", ":::", "a", "b"}, ""},
		{"-r skips blank inputs", []string{"-k", "-r", "echo", "[{}]"}, "  \n\na\n"},
		{"blank inputs run without -r", []string{"-k", "echo", "[{}]"}, "  \n\na\n"},
		{"-P is -j", []string{"-P", "2", "-k", "echo", ":::", "p", "q"}, ""},
		{"-t prints each command as it starts", []string{"-j1", "-t", "echo", ":::", "a", "b"}, ""},
		{"--dry-run quotes as GNU parallel does", []string{"-k", "--dry-run", "echo", ":::", "it's", "a b", "a=b", "+x/y.z", "$HOME", "é", ""}, ""},
		{"--colsep trims the columns", []string{"-k", "--colsep", ",", "echo", "[{1}][{2}][{3}]"}, "a , b ,c\nd,e\n"},
		{"--trim n keeps them", []string{"-k", "--colsep", ",", "--trim", "n", "echo", "[{1}][{2}][{3}]"}, "a , b ,c\n"},
		{"--trim lr without --colsep", []string{"--trim", "lr", "echo", "[{}]"}, " x \n"},
		{"a missing column is nothing", []string{"--colsep", ",", "echo", "{1}", "{3}", "X"}, "d,e\n"},
		{"-N2 with an odd input", []string{"-k", "-N2", "echo", "{1}", "{2}", "X", ":::", "a", "b", "c"}, ""},
		{"--pipe cuts before the block size", []string{"--pipe", "--block", "10", "-k", "wc", "-c"}, seq(20)},
		{"--pipe with k as 1000", []string{"--pipe", "--block", "1k", "-k", "wc", "-c"}, seq(2000)},
		{"--pipe with K as 1024", []string{"--pipe", "--block", "1K", "-k", "wc", "-c"}, seq(2000)},
		{"--pipe --recstart alone", []string{"--pipe", "--recstart", ">", "-N1", "-k", "wc", "-l"}, ">a\nxx\n>b\nyy\n"},
		{"--shellquote", []string{"-k", "--shellquote"}, "a b\nit's\nx\n"},
		{"--shellquote of two sources", []string{"-k", "--shellquote", ":::", "x", "y", ":::", "1"}, ""},
		{"-q keeps each word one word", []string{"-k", "-q", "printf", "<%s>\\n", "{} x", ":::", "a'b", "c;d"}, ""},
		{"--xargs fills the command line", []string{"-k", "-j3", "--xargs", "echo"}, seq(10)},
		{"-m spreads over the slots", []string{"-k", "-j3", "-m", "echo"}, seq(10)},
		{"-m with one slot", []string{"-k", "-j1", "-m", "echo", "{}", "X", "{#}"}, seq(10)},
		{"-X repeats the word", []string{"-k", "-j2", "-X", "echo", "x{}y"}, seq(10)},
		{"-X with a plain {} word", []string{"-k", "-j1", "-X", "echo", "{}", "x{}y"}, seq(5)},
		{"-s caps the line", []string{"-k", "-s", "12", "--xargs", "echo"}, seq(10)},
		{"-s with -m and two {}", []string{"-k", "-s", "12", "-j1", "-m", "echo", "{}", "{}"}, seq(10)},
		{"-s with -X", []string{"-k", "-s", "14", "-j1", "-X", "echo", "x{}y"}, seq(10)},
		{"-L lines per job", []string{"-k", "-L", "2", "echo"}, seq(6)},
		{"failed jobs count", []string{"exit {}", ":::", "0", "1", "2", "0", "5"}, ""},
		{"--header : names the columns", []string{"-k", "--header", ":", "--colsep", "\t", "echo", "{name}", "{file/..}", "{file.}", "{2}"}, "name\tfile\nx\ta/b.tar.gz\n"},
		{"--header : of a file and values", []string{"-k", "--header", ":", "--colsep", "\t", "echo", "{file}", "{n}", "{1}", "::::", table, ":::", "n", "1", "2"}, ""},
		{"--header : names the sources", []string{"-k", "--header", ":", "echo", "{x}-{y}", ":::", "x", "1", "2", ":::", "y", "3", "4"}, ""},
		{"--header : with --pipe", []string{"-k", "--header", ":", "--pipe", "-N1", "cat"}, "h\nl1\nl2\n"},
		{"--header 2 with --pipe", []string{"-k", "--header", "2", "--pipe", "-N2", "cat"}, "h1\nh2\nl1\nl2\nl3\n"},
		{"{-n} counts from the end", []string{"-k", "echo", "{-1}", "{-2}", ":::", "a", "b", ":::", "c", "d"}, ""},
		{"{-1} with -n", []string{"-k", "-n3", "echo", "{-1}/{-2}", ":::", "1", "2", "3", "4", "5"}, ""},
		{"--plus path strings", append([]string{"-k", "--plus", "echo", "{+/}", "{+.}", "{+..}", "{+...}", "{..}", "{...}", "{/..}", "{/...}", "{.}", "{/.}", "{//}", "{1+.}", ":::"}, names...), ""},
		{"--plus bash strings", append([]string{"-k", "--plus", "echo", "{:-x}", "{:2}", "{:1:3}", "{%%.*}", "{%.*}", "{/a/X}", "{//a/X}", "{/#a/X}", "{/%z/X}", "{^a}", "{^^a}", "{,A}", "{,,A}", "{#a.}", "{##a.*\\.}", "{%\\..}", ":::"}, names...), ""},
		{"--recend '' cuts fixed-length records", []string{"--pipe", "--recend", "", "-k", "--block", "3", "cat; echo"}, "abcdefgh"},
		{"--pipepart cuts after the block size", []string{"--pipepart", "-a", ten, "--block", "6", "-k", "wc", "-l"}, ""},
		{"--pipepart --block -2", []string{"--pipepart", "-a", ten, "--block", "-2", "-j2", "-k", "wc", "-l"}, ""},
		{"--pipepart of two files", []string{"--pipepart", "-a", ten, "-a", ten, "--block", "100", "-k", "wc", "-l"}, ""},
		{"--pipepart --header", []string{"--pipepart", "--header", ":", "-a", ten, "--block", "6", "-k", "cat | head -2"}, ""},
		{"--group-by -N1", []string{"--pipe", "--group-by", "2", "-N1", "-k", "echo X; cat"}, "1\ta\n2\ta\n3\tb\n"},
		{"--cat gives the block in a file", []string{"--pipe", "-N2", "--cat", "-k", "wc -l < {}; cat {} {}"}, seq(5)},
		{"--fifo gives it through a named pipe", []string{"--pipe", "-N2", "--fifo", "-k", "wc -l < {}"}, seq(5)},
		{"--round-robin -k hands blocks out in turn", []string{"--pipe", "-N1", "--round-robin", "-j3", "-k", "echo job; cat"}, seq(10)},
		{"-k with --line-buffer", []string{"-k", "--line-buffer", "-j3", "echo {} start; sleep 0.{}; echo {} end", ":::", "3", "1", "2"}, ""},
		{"--results a tree", []string{"-k", "--results", "out", "sh", "-c", "echo $0; echo $1 >&2", ":::", "a", "b/c", "x\\y", ":::", "1", "2"}, ""},
		{"--results with -N2", []string{"-k", "-N2", "--results", "out", "echo", ":::", "a", "b", "c"}, ""},
		{"--results with --header", []string{"-k", "--header", ":", "--results", "out", "echo", ":::", "h", "a", ":::", "g", "b"}, ""},
		{"--results names the files", []string{"-k", "--results", "out/{}-{#}", "echo", ":::", "a", "b"}, ""},
		{"--results and --files", []string{"-k", "--files", "--results", "out", "echo", ":::", "a", "b"}, ""},
		{"--results counts failures", []string{"--results", "out", "exit", ":::", "0", "1", "2"}, ""},
		{"--workdir makes the folder, per job", []string{"-k", "--wd", "out/w{}", "basename \"$PWD\" > f.{}; cat f.{}", ":::", "a", "b"}, ""},
		{"--workdir ... is a new folder in ~/.parallel/tmp", []string{"-k", "--wd", "...", "basename \"$(dirname \"$PWD\")\"; ls; echo {}", ":::", "a", "b"}, ""},
		{"--plus {host} {sshlogin} {slot} are the job's variables", []string{"-k", "--plus", "-j1", "echo [{host}] [{sshlogin}] [{slot}] {}; echo $PARALLEL_SSHHOST", ":::", "a"}, ""},
		{"--plus --dry-run shows them as variables", []string{"--plus", "--dry-run", "echo {host} {sshlogin} {slot}", ":::", "a"}, ""},
		{"--plus {##} and {0#}", []string{"-k", "--plus", "echo", "{##}", "{0#}", ":::", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !*updateGNU {
				t.Parallel() // each case in a folder of its own: see below
			}
			// The cases write files (out/...) where they run, and in
			// their home (~/.parallel/tmp): a folder each. The fixtures
			// in dir are only read.
			dir := t.TempDir()
			want, ok := wants[tc.name]
			if gnu != "" {
				live := runTool(t, dir, gnu, append([]string{"--will-cite"}, tc.args...), tc.stdin)
				switch {
				case *updateGNU:
					wants[tc.name], want, ok = live, live, true
				case live != want:
					t.Errorf("GNU parallel %q gives:\n%s\nnot what %s says:\n%s", tc.args, live, record, want)
				}
			}
			if !ok {
				t.Fatalf("%s has no case %q: run go test -run TestLikeGNUParallel -update-gnu ./cmd/herd where GNU parallel is installed", record, tc.name)
			}
			if got := runTool(t, dir, herd, append([]string{"run"}, tc.args...), tc.stdin); got != want {
				t.Errorf("herd run %q:\n%s\nGNU parallel:\n%s", tc.args, got, want)
			}
		})
	}
	if *updateGNU {
		b, err := json.MarshalIndent(wants, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(record, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// seq is what seq n prints.
func seq(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString(strconv.Itoa(i) + "\n")
	}
	return b.String()
}

// runTool runs a command in dir and describes what it did: its output,
// its error output and its exit status.
func runTool(t *testing.T, dir, name string, args []string, stdin string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testutil.Backstop)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = orphanWait // for what the tool leaves running, holding its output
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "SHELL=/bin/sh")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	status := 0
	if err := cmd.Run(); ctx.Err() != nil {
		t.Fatalf("%s %q did not finish within %v; its error output:\n%s", name, args, testutil.Backstop, errOut.String())
	} else if errors.Is(err, exec.ErrWaitDelay) {
		t.Fatalf("%s %q left processes running that held its output", name, args)
	} else if err != nil {
		exit, ok := errors.AsType[*exec.ExitError](err)
		if !ok {
			t.Fatalf("%s: %v", name, err)
		}
		status = exit.ExitCode()
	}
	return "stdout:\n" + out.String() + "stderr:\n" + errOut.String() + "status: " + strconv.Itoa(status) + files(t, dir, "out")
}

// files describes the files under dir/name, for --results, and removes
// them: each one's path and what it holds.
func files(t *testing.T, dir, name string) string {
	t.Helper()
	var b strings.Builder
	root := filepath.Join(dir, name)
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		content, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(&b, "\nfile %s: %q %v", rel, content, err)
		return nil
	})
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
