#!/bin/bash
# Runs bench/metrics in --quick mode and checks that it printed every figure
# it promises (never their values).
set -euo pipefail
out=$("$@")
echo "$out"
grep -q '^throughput: [0-9]* builds .* [0-9.]* builds/s$' <<<"$out"
grep -q '^scrape: [0-9]* bytes, [0-9]* series; latency over [0-9]* scrapes: median [0-9.]* ms, p99 [0-9.]* ms; master CPU -\?[0-9.]* ms per scrape' <<<"$out"
grep -q '^master RSS with [0-9]* workers' <<<"$out"
[ "$(grep -c '^metrics o[nf]f\? *: latency submit->step start over [0-9]* builds: median [0-9.]* ms, p99 [0-9.]* ms' <<<"$out")" = 4 ]
