#!/usr/bin/env bash
# Measures the queue's limits across a fleet of real processes: a queue
# server, three `herd work -j 8`, and runs whose jobs note when they start
# and end (`s|e ID NANOS`, appended to a log: lines this short are written
# whole). What it prints is what BENCHMARKS.md quotes.
#
#   bash bench/limits.sh [seconds]    (default 120 for each of the three)
#
# 1. --concurrency 5: jobs of 0.2s; one worker is killed with kill -9 a
#    third of the way in and started again 5s later. The peak of jobs
#    running at once over the whole time, and the gap between a job's
#    last line and the next job's first line each time the fleet drops
#    from 5 to 4 (this includes the shell's exit, the outcome stored, the
#    slot handed on and the next shell's start).
# 2. --rate 50/s: the starts in every 10s window.
# 3. --key-concurrency 2: 1,000 jobs of 0.1s, 10 keys: the peak of one key
#    at once, and the share of the keys seen in the first 10% of starts.
# 4. For comparison with 1: one herd work -j 5 on a queue with no limit,
#    the same jobs, half as long.
set -euo pipefail
secs=${1:-120}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/herd" ./cmd/herd
herd=$tmp/herd
port=$((20000 + RANDOM % 20000))
q=nats://127.0.0.1:$port
"$herd" queue serve --dir "$tmp/q" --listen "127.0.0.1:$port" 2>"$tmp/serve.log" &
pids+=($!)
until "$herd" queue stats --queue "$q" --interval 0 >/dev/null 2>&1; do sleep 0.2; done

worker() { # queue-name [jobs]: starts a worker, prints its pid
  "$herd" work --queue "$q" --queue-name "$1" -j "${2:-8}" --lease 5s 2>>"$tmp/work.log" >/dev/null &
  echo $!
}
# report_fleet LOG START: the peak of jobs at once in LOG from START on, and
# the gaps from a job ending while 5 ran to the next start. A killed
# worker's shells die with it (their end is the kill, k); the window ends
# at x.
report_fleet() {
  rm -f "$tmp/gaps"
  sort -k3,3n "$1" | awk -v start="$2" -v gapfile="$tmp/gaps" '
    $1 == "k" { for (id in open) { running--; delete open[id] }; next }
    $1 == "x" { exit }
    $3 < start { next }
    $1 == "s" { running++; open[$2] = 1; starts++; if (running > peak) peak = running
                if (dropped) { printf "%.3f\n", ($3 - dropped) / 1e6 > gapfile; dropped = 0 } }
    $1 == "e" && ($2 in open) { delete open[$2]; if (running == 5) dropped = $3; running-- }
    END { printf "jobs started: %d; peak at once: %d\n", starts, peak }'
  sort -n "$tmp/gaps" | awk '{ g[NR] = $1 }
    END { printf "gap from a job of 5 ending to the next start (ms), %d gaps: median %.2f, p90 %.2f, p99 %.2f, max %.2f\n",
      NR, g[int(NR * 0.5) + 1], g[int(NR * 0.9) + 1], g[int(NR * 0.99) + 1], g[NR] }'
}
job="echo s \$\$ \$(date +%s%N) >> LOG; sleep 0.2; echo e \$\$ \$(date +%s%N) >> LOG"
now() { date +%s%N; }

echo "== --concurrency 5: 3 herd work -j 8, jobs of 0.2s, one worker killed (kill -9) at $((secs / 3))s and started again 5s later, ${secs}s"
log=$tmp/conc.log
"$herd" queue limit conc --concurrency 5 --queue "$q" >/dev/null
ws=()
for _ in 1 2 3; do ws+=("$(worker conc)"); done
pids+=("${ws[@]}")
n=$((secs * 5 * 5 * 3 / 2)) # more than 5 at once can run in the time
"$herd" run --queue "$q" --queue-name conc --detach "${job//LOG/$log}" ::: $(seq "$n") >/dev/null
start=$(now)
sleep $((secs / 3))
kill -9 "${ws[0]}"
echo "k 0 $(now)" >> "$log"
sleep 5
pids+=("$(worker conc)")
sleep $((secs - secs / 3 - 5))
echo "x 0 $(now)" >> "$log"
report_fleet "$log" "$start"
for p in "${ws[@]:1}"; do kill "$p" 2>/dev/null || true; done
kill "${pids[-1]}" 2>/dev/null || true
"$herd" queue purge --queue-name conc --queue "$q" --yes >/dev/null

echo "== --rate 50/s: 3 herd work -j 8, ${secs}s"
log=$tmp/rate.log
"$herd" queue limit rate --rate 50/s --queue "$q" >/dev/null
for _ in 1 2 3; do pids+=("$(worker rate)"); done
"$herd" run --queue "$q" --queue-name rate --detach \
  "echo s \$\$ \$(date +%s%N) >> $log" ::: $(seq $((secs * 50 + 1000))) >/dev/null
sleep $((secs + 2))
sort -k3,3n "$log" | awk -v secs="$secs" '
  NR == 1 { first = $3 }
  { w = int(($3 - first) / 1e10); if (w < secs / 10) count[w]++ }
  END {
    lo = 1e9; hi = 0
    for (w = 0; w < secs / 10; w++) { line = line " " count[w]; if (count[w] < lo) lo = count[w]; if (count[w] > hi) hi = count[w] }
    printf "starts in each 10s window:%s\nlowest %.1f/s, highest %.1f/s (target 50/s, within 45 and 55)\n", line, lo / 10, hi / 10
  }'
for p in "${pids[@]: -3}"; do kill "$p" 2>/dev/null || true; done

echo "== --key-concurrency 2: 3 herd work -j 8, 1,000 jobs of 0.1s, 10 keys"
log=$tmp/key.log
"$herd" queue limit key --key-concurrency 2 --queue "$q" >/dev/null
for _ in 1 2 3; do pids+=("$(worker key)"); done
begin=$(now)
"$herd" run --queue "$q" --queue-name key --key '{1}' --colsep _ \
  "echo s {1} \$(date +%s%N) >> $log; sleep 0.1; echo e {1} \$(date +%s%N) >> $log" \
  ::: $(for i in $(seq 1000); do echo "k$((i % 10))_$i"; done) >/dev/null
end=$(now)
sort -k3,3n "$log" | awk -v took="$(((end - begin) / 1000000))" '
  $1 == "s" { run[$2]++; if (run[$2] > peak) peak = run[$2]; starts++; if (starts <= 100) seen[$2] = 1 }
  $1 == "e" { run[$2]-- }
  END {
    printf "jobs: %d; peak of one key at once: %d; keys seen in the first 100 starts: %d of 10\n", starts, peak, length(seen)
    printf "the run took %.1fs (at 20 at once, 1,000 jobs of 0.1s take at least 5s)\n", took / 1000
  }'

echo "== for comparison: one herd work -j 5 and no limit, the same jobs, $((secs / 2))s"
log=$tmp/base.log
pids+=("$(worker base 5)")
"$herd" run --queue "$q" --queue-name base --detach "${job//LOG/$log}" ::: $(seq $((secs * 25))) >/dev/null
start=$(now)
sleep $((secs / 2))
echo "x 0 $(now)" >> "$log"
report_fleet "$log" "$start"
