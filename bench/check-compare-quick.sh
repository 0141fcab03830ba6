#!/bin/bash
# Runs bench/compare --quick and checks that it printed every figure of the
# table for Buildyard (never their values).
set -euo pipefail
out=$("$@")
echo "$out"
num='[0-9][0-9.]*'
for row in 'latency median, 8 local workers' 'latency p99, 8 local workers' \
           'latency median, 8 remote workers' 'latency p99, 8 remote workers' \
           'throughput, 8 local workers' 'throughput, 8 remote workers' \
           'worker idle RSS, local' 'worker idle RSS, remote' 'worker idle PSS, local' 'worker idle PSS, remote' \
           'master RSS, 8 remote workers' 'master RSS, [0-9]* remote workers' \
           'log throughput, local worker' 'log throughput, remote worker' 'attach storm, [0-9]* remote workers' \
           'latency median, 8 remote workers, plain TCP' 'latency p99, 8 remote workers, plain TCP' \
           'throughput, 8 remote workers, plain TCP' 'worker idle RSS, remote, plain TCP' \
           'log throughput, remote worker, plain TCP'; do
    grep -q "^| $row  *| $num [a-zA-Z/]* ($num-$num)  *|" <<<"$out" || { echo "missing figure: $row" >&2; exit 1; }
done
