#!/bin/bash
# check-remote-storm.sh LIMIT BENCH ARGS...: runs bench/remote (with ARGS,
# e.g. --workers 2000 --tls yes --attach-only) and fails if the attach from
# cold took more than LIMIT seconds. The one timed test of the project: it
# guards against the cost of an event growing with the number of workers
# again (which made 2,000 workers take 49 s), with a limit several times
# the figure measured on the development machine (README, Benchmarks).
set -euo pipefail
limit=$1
shift
out=$("$@")
echo "$out"
secs=$(sed -n 's/^attach from cold, [A-Za-z ]*: [0-9]* workers in \([0-9.]*\) s$/\1/p' <<<"$out" | head -1)
[ -n "$secs" ] || { echo "check-remote-storm: no attach figure in the output" >&2; exit 1; }
if [ "$(echo "$secs > $limit" | bc -l)" = 1 ]; then
    echo "check-remote-storm: attach from cold took $secs s, more than $limit s" >&2
    exit 1
fi
echo "attach from cold within $limit s: $secs s"
