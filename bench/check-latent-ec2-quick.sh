#!/bin/bash
# Runs bench/latent-ec2 in --quick mode and checks that it printed every
# figure it promises (never their values).
set -euo pipefail
out=$("$@")
echo "$out"
grep -q '^ec2: build request to worker attached: median [0-9.]* s' <<<"$out"
grep -q '^ec2: build request to build finished: median [0-9.]* s' <<<"$out"
grep -q '^ec2: latentd RSS [0-9.]* MiB with none, [0-9.]* MiB with [0-9]* instances tracked' <<<"$out"
