#!/bin/bash
# Runs bench/latent in --quick mode and checks that it printed every figure
# it promises (never their values). Exit 77 (skipped) passes through: the
# benchmark skips where libvirtd cannot run.
set -uo pipefail
out=$("$@")
rc=$?
echo "$out"
[ "$rc" -eq 0 ] || exit "$rc"
set -e
grep -q '^libvirt: build request to worker attached: median [0-9.]* s' <<<"$out"
grep -q '^libvirt: build request to build finished: median [0-9.]* s' <<<"$out"
grep -q '^libvirt: build_wait_timeout expiry to domain gone: median [0-9.]* s' <<<"$out"
