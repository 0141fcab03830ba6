#!/bin/bash
# Runs bench/latent-docker in --quick mode and checks that it printed every
# figure it promises (never their values).
set -euo pipefail
out=$("$@")
echo "$out"
grep -q '^docker: build request to worker attached: median [0-9.]* s' <<<"$out"
grep -q '^docker: build request to build finished: median [0-9.]* s' <<<"$out"
grep -q '^docker: build finished to container removed: median [0-9.]* s' <<<"$out"
