#!/bin/bash
# Runs bench/remote in --quick mode and checks that it printed every figure
# it promises (never their values).
set -euo pipefail
out=$("$@")
echo "$out"
grep -q '^attach from cold: [0-9]* workers in [0-9.]* s$' <<<"$out"
grep -q '^master RSS with [0-9]* attached: [0-9.]* MiB$' <<<"$out"
grep -q '^master CPU per keepalive round: [0-9.]* ms' <<<"$out"
grep -q '^re-attach after a master restart: [0-9]* workers in [0-9.]* s$' <<<"$out"
