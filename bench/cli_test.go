package bench

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// herdPath is the herd binary for the command-line benchmarks: $HERD_BIN,
// which run.sh builds once for all rounds, or else one built now.
var herdPath = func() func(testing.TB) string {
	path := os.Getenv("HERD_BIN")
	return func(tb testing.TB) string {
		if path != "" {
			return path
		}
		dir, err := os.MkdirTemp("", "herd-bench")
		if err != nil {
			tb.Fatal(err)
		}
		p := filepath.Join(dir, "herd")
		build := exec.Command("go", "build", "-o", p, "./cmd/herd")
		build.Dir = ".." // herd's own module, with its own dependencies
		if out, err := build.CombinedOutput(); err != nil {
			tb.Fatalf("building herd: %v\n%s", err, out)
		}
		path = p
		return p
	}
}()

// childCPU is the CPU time of all waited-for children so far.
func childCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func lines(n int, s string) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(strings.ReplaceAll(s, "N", fmt.Sprint(i+1)))
		b.WriteByte('\n')
	}
	return b.String()
}

// benchCLI runs the command on the input b.N times and reports wall and CPU
// time per job; CPU counts herd, xargs or parallel and every job process.
func benchCLI(b *testing.B, argv []string, in string, jobs int) {
	if _, err := exec.LookPath(argv[0]); err != nil {
		b.Fatalf("%s is needed for this benchmark: %v (bench/run.sh installs it)", argv[0], err)
	}
	cpu := childCPU()
	for b.Loop() {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin = strings.NewReader(in)
		cmd.Stdout = io.Discard
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("%v: %v\n%s", argv, err, stderr.String())
		}
	}
	cpu = childCPU() - cpu
	total := float64(b.N) * float64(jobs)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total/1e6, "ms/job")
	b.ReportMetric(float64(cpu.Nanoseconds())/total/1e6, "cpu-ms/job")
}

func BenchmarkCLI(b *testing.B) {
	herd := herdPath(b)
	type workload struct {
		name  string
		in    string
		jobs  int
		tools map[string][]string
	}
	for _, w := range []workload{
		{"true-j2", lines(1000, "N"), 1000, map[string][]string{
			"xargs":    {"xargs", "-P2", "-n1", "true"},
			"herd":     {herd, "run", "-j2", "true"},
			"parallel": {"parallel", "--will-cite", "-j2", "true"},
		}},
		{"true-j8", lines(1000, "N"), 1000, map[string][]string{
			"xargs":    {"xargs", "-P8", "-n1", "true"},
			"herd":     {herd, "run", "-j8", "true"},
			"parallel": {"parallel", "--will-cite", "-j8", "true"},
		}},
		{"echo-k", lines(1000, "N"), 1000, map[string][]string{
			"xargs":    {"xargs", "-P2", "-n1", "echo"}, // xargs cannot keep order
			"herd":     {herd, "run", "-j2", "-k", "echo", "{}"},
			"parallel": {"parallel", "--will-cite", "-j2", "-k", "echo", "{}"},
		}},
		{"sleep-j50", lines(200, "0.01"), 200, map[string][]string{
			"xargs":    {"xargs", "-P50", "-n1", "sleep"},
			"herd":     {herd, "run", "-j50", "sleep"},
			"parallel": {"parallel", "--will-cite", "-j50", "sleep"},
		}},
		{"startup", "1\n", 1, map[string][]string{
			"xargs":    {"xargs", "-n1", "true"},
			"herd":     {herd, "run", "true"},
			"parallel": {"parallel", "--will-cite", "true"},
		}},
	} {
		for _, tool := range []string{"xargs", "herd", "parallel"} {
			b.Run(fmt.Sprintf("w=%s/impl=%s", w.name, tool), func(b *testing.B) {
				if listing {
					return // run.sh only lists the cases
				}
				benchCLI(b, w.tools[tool], w.in, w.jobs)
			})
		}
	}
}
