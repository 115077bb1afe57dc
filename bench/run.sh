#!/usr/bin/env bash
# Runs herd's benchmarks side by side with its peers and prints a benchstat
# table per workload. The contenders are interleaved — every round runs each
# of them once, in turn — so that a noisy neighbour hurts all of them alike,
# and the rounds are repeated so that benchstat can quote medians.
#
#   bash bench/run.sh [rounds] [benchmark regexp]
#
# Defaults: 6 rounds of every benchmark (benchstat wants 6 for a confidence
# interval). Raw results go to bench/results.txt; the tables, one per unit
# and workload with a row per contender, to standard output.
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-6}
filter=${2:-.}

# BenchmarkCLI compares herd run with xargs and GNU parallel; BenchmarkQueue
# compares herd's queue with asynq, which needs a Redis server.
for pkg in parallel:parallel redis-server:redis-server; do
  if ! command -v "${pkg%%:*}" >/dev/null; then
    echo "installing Debian package ${pkg#*:}" >&2
    apt-get install -y -qq "${pkg#*:}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${pkg#*:}" >/dev/null; }
  fi
done

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go test -c -o "$bin/bench.test" .
(cd .. && go build -o "$bin/herd" ./cmd/herd)
export HERD_BIN="$bin/herd" # one build of herd for every round
go build -o "$bin/benchstat" golang.org/x/perf/cmd/benchstat

# Every benchmark/config/impl triple, in the order the test binary lists them.
mapfile -t cases < <("$bin/bench.test" -test.list '^Benchmark' | grep -E -- "$filter" | while read -r b; do
  HERD_BENCH_LIST=1 "$bin/bench.test" -test.run '^$' -test.bench "^$b\$" -test.benchtime 1x 2>/dev/null |
    awk '/^Benchmark/ { sub(/-[0-9]+$/, "", $1); print $1 }'
done)

out=results.txt
: > "$out"
for r in $(seq "$rounds"); do
  echo "round $r of $rounds" >&2
  for c in "${cases[@]}"; do
    # Sub-benchmark names are matched part by part, each as a regexp.
    pattern=$(echo "$c" | sed -E 's#([^/]+)#^\1$#g')
    times=3x
    case "$c" in BenchmarkQueue* | BenchmarkEnqueueLatency*) times=1x ;; esac # a whole run each
    "$bin/bench.test" -test.run '^$' -test.bench "$pattern" -test.benchtime "$times" |
      grep -E '^(Benchmark|goos|goarch|pkg|cpu)' >> "$out"
  done
done
for unit in cpu-sec/task sec/task B/task allocs/task; do
  echo "## $unit"
  "$bin/benchstat" -table .name -row /impl -col /workers -filter ".unit:$unit" "$out"
done
for unit in cpu-ms/job ms/job; do
  echo "## $unit"
  "$bin/benchstat" -table .name -row /impl -col /w -filter ".unit:$unit" "$out"
done
for unit in enqueued/s processed/s jobs/s; do
  echo "## $unit"
  "$bin/benchstat" -table .name -row /impl -col /shape -filter ".name:Queue .unit:$unit" "$out"
done
for unit in p50-µs p99-µs; do
  echo "## lone enqueue, $unit"
  "$bin/benchstat" -table .name -row /impl -filter ".name:EnqueueLatency .unit:$unit" "$out"
done
