// Command clicompare runs herd run binaries (and xargs) side by side on the
// same workloads, each in turn for 9 rounds, and prints the median wall and
// CPU time per job of each: for comparing two builds of herd.
//
//	go run ./clicompare /tmp/herd-before /tmp/herd-after /usr/bin/xargs
package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// childCPU is the CPU time of all waited-for children so far.
func childCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	type wl struct {
		name string
		in   string
		args []string
		jobs int
		reps int
	}
	var b strings.Builder
	for i := 1; i <= 1000; i++ {
		fmt.Fprintln(&b, i)
	}
	thousand := b.String()
	wls := []wl{
		{"true-j2", thousand, []string{"run", "-j2", "true"}, 1000, 1},
		{"echo-k", thousand, []string{"run", "-j2", "-k", "echo", "{}"}, 1000, 1},
		{"startup", "1\n", []string{"run", "true"}, 1, 50},
	}
	bins := os.Args[1:]
	const rounds = 9
	for _, w := range wls {
		wall := map[string][]float64{}
		cpu := map[string][]float64{}
		for range rounds {
			for _, bin := range bins {
				argv := w.args
				if strings.HasSuffix(bin, "xargs") {
					argv = []string{"-P2", "-n1", "true"}
					if w.name == "startup" {
						argv = []string{"-n1", "true"}
					}
				}
				c0, t0 := childCPU(), time.Now()
				for range w.reps {
					cmd := exec.Command(bin, argv...)
					cmd.Stdin = strings.NewReader(w.in)
					if err := cmd.Run(); err != nil {
						panic(fmt.Sprint(bin, err))
					}
				}
				n := float64(w.jobs * w.reps)
				wall[bin] = append(wall[bin], float64(time.Since(t0).Microseconds())/n)
				cpu[bin] = append(cpu[bin], float64((childCPU()-c0).Microseconds())/n)
			}
		}
		for _, bin := range bins {
			slices.Sort(wall[bin])
			slices.Sort(cpu[bin])
			fmt.Printf("%-8s %-22s wall/job %8.0f µs   cpu/job %8.0f µs\n", w.name, bin, wall[bin][rounds/2], cpu[bin][rounds/2])
		}
	}
}
