#!/bin/bash
# Runs bench/cluster in --quick mode and checks that it printed every figure
# it promises (never their values).
set -euo pipefail
out=$("$@")
echo "$out"
for n in 1 2 3; do
    grep -q "^throughput, $n master(s) on PostgreSQL: [0-9]* builds .* [0-9.]* builds/s$" <<<"$out"
done
grep -q '^throughput, 1 master(s) on SQLite: [0-9]* builds .* [0-9.]* builds/s$' <<<"$out"
for db in PostgreSQL SQLite; do
    grep -q "^$db: latency submit->step start over [0-9]* builds: median [0-9.]* ms, p99 [0-9.]* ms" <<<"$out"
done
grep -q '^failover: kill -9 of a master with [0-9]* running builds .*: [0-9]* of them running on the other master, the first after [0-9.]* s, the last after [0-9.]* s$' <<<"$out"
for what in 'local dispatch' 'cross-master pickup'; do
    grep -q "^$what (.*): latency submit->step start over [0-9]* builds: median [0-9.]* ms, p99 [0-9.]* ms" <<<"$out"
done
grep -q '^one round trip to the server (pgbench, .*): average [0-9.]* ms$' <<<"$out"
grep -q '^budget (issue 17): .* = [0-9.]* ms; the cross-master pickup median [0-9.]* ms is \(within it\|OVER it\) ([-+][0-9.]* ms)$' <<<"$out"
grep -q '^paired (.*): each pickup minus the local dispatch before it, median [-+][0-9.]* ms, against one round trip of [0-9.]* ms: \(within it\|OVER it\)$' <<<"$out"
grep -q '^the same against one durable round trip, .*, average [0-9.]* ms): \(within it\|OVER it\) ([-+][0-9.]* ms)$' <<<"$out"
grep -q '^the same against the claim itself (store-claims --join: .*, average [0-9.]* ms): \(within it\|OVER it\) ([-+][0-9.]* ms)$' <<<"$out"
