#!/bin/bash
# Runs bench/remote in --quick mode and checks that it printed every figure
# it promises, over TLS and over plain TCP (never their values).
set -euo pipefail
out=$("$@")
echo "$out"
for label in 'TLS' 'plain TCP'; do
    grep -q "^attach from cold, $label: [0-9]* workers in [0-9.]* s\$" <<<"$out"
    grep -q "^master RSS with [0-9]* attached, $label: [0-9.]* MiB\$" <<<"$out"
    grep -q "^master CPU per keepalive round, $label: [0-9.]* ms" <<<"$out"
    grep -q "^dispatch with [0-9]* attached, $label: submit->step start over [0-9]* builds: median [0-9.]* ms, p99 [0-9.]* ms" <<<"$out"
    grep -q "^dispatch with [0-9]* attached, $label: throughput: [0-9]* builds .* [0-9.]* builds/s\$" <<<"$out"
    grep -q "^re-attach after a master restart, $label: [0-9]* workers in [0-9.]* s\$" <<<"$out"
done
