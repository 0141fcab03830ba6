#!/bin/bash
# run-suite.sh TREE CTEST-ARGS...: runs tests of the sanitizer tree with
# every sanitizer report written to a directory of its own (daemons started
# by a test write theirs there too, whatever becomes of their output), and
# fails if the tests fail or if any report was written.
set -euo pipefail
tree=$1
shift
reports=$(mktemp -d "${TMPDIR:-/tmp}/buildyard-sanitize.XXXXXX")
chmod 1777 "$reports"  # tests run some daemons as another user
trap 'rm -rf "$reports"' EXIT
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Not strict_string_checks: it makes strncasecmp(s, "LONGER", 5) on a shorter
# NUL-terminated s a report, which C allows (libesmtp does it on every
# server reply, and the master aborted on its first mail).
# fast_unwind_on_malloc=0: a leak's stack goes on through libraries built
# without frame pointers (libcrypto, libesmtp), where the fast unwinder
# stops at the first frame and the report names no code of ours; about
# 6% slower here.
export ASAN_OPTIONS="log_path=$reports/asan:halt_on_error=1:abort_on_error=0:detect_leaks=1:fast_unwind_on_malloc=0:malloc_context_size=40:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="log_path=$reports/ubsan:halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0"
# Tests that bound a daemon's memory bound its growth instead: AddressSanitizer's
# shadow memory and the quarantine of freed blocks are not the daemon's own.
export BUILDYARD_SANITIZED=1
status=0
ctest --test-dir "$tree" --output-on-failure -j"${BUILDYARD_SANITIZE_JOBS:-2}" --timeout 900 \
    --output-junit "$reports/junit.xml" "$@" || status=$?
# As .ci/run: in CI a test of the suite that is skipped or not run fails it.
if [ "${CI:-false}" = true ]; then
    /usr/bin/python3 "$here/../../.ci/check-not-run" "$reports/junit.xml" || status=1
fi
rm -f "$reports/junit.xml"
found=0
for f in "$reports"/*; do
    [ -e "$f" ] || continue
    found=1
    echo "=== sanitizer report $(basename "$f")"
    cat "$f"
done
if [ "$found" -ne 0 ]; then
    echo "sanitizer reports were written (above): failing"
    exit 1
fi
exit "$status"
