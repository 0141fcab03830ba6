#!/bin/bash
# Runs bench/history in --quick mode and checks that it printed every figure
# it promises (never their values).
set -euo pipefail
out=$("$@")
echo "$out"
for call in "ListBuilds 0" "ListBuilds 2^64-1" "ListBuildsBefore MIDDLE 1000" "ReadLog 0 2^64-1 (45-byte log)" \
    "Describe" "SubmitBuild with a 30 MB property"; do
    grep -qF "$call " <<<"$out"
done
grep -q "^longest loop time of any call (HTTP ping): [0-9.]* ms" <<<"$out"
grep -q "^longest bus ping behind any call: [0-9.]* ms" <<<"$out"
