#!/bin/bash
# Runs a benchmark in --quick mode and checks that it printed every figure
# it promises (never their values).
set -euo pipefail
out=$("$@")
echo "$out"
grep -q '^latency submit->step start over [0-9]* builds: median [0-9.]* ms, p99 [0-9.]* ms' <<<"$out"
grep -q '^throughput: [0-9]* builds .* [0-9.]* builds/s$' <<<"$out"
