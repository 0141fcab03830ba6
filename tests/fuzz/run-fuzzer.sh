#!/bin/bash
# run-fuzzer.sh FUZZER SEEDS WORKDIR SECONDS: runs a libFuzzer harness for
# SECONDS on its seed corpus (the repository's, read only) and on what it
# found before in WORKDIR/corpus (new inputs go there), with the dictionary
# SEEDS/../../NAME.dict if there is one. Fails on any crash,
# sanitizer report, leak, timeout (10 s for one input) or failed property;
# the input that did it is WORKDIR/crash-* (or leak-*, timeout-*, oom-*),
# and `FUZZER FILE` replays it.
set -euo pipefail
fuzzer=$1 seeds=$2 work=$3 seconds=$4
mkdir -p "$work/corpus"
rm -f "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*
dict=$(dirname "$seeds")/../$(basename "$seeds").dict
start=$(date +%s)
status=0
"$fuzzer" ${dict:+$( [ -f "$dict" ] && echo "-dict=$dict")} -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" "$seeds" </dev/null || status=$?
echo "fuzzed $(basename "$fuzzer") for $(( $(date +%s) - start )) s; corpus now $(ls "$work/corpus" | wc -l) inputs"
if [ "$status" -ne 0 ]; then
    for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
        [ -e "$f" ] && { echo "the input: $f"; od -c "$f" | head -40; }
    done
    exit 1
fi
