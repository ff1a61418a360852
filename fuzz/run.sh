#!/usr/bin/env bash
# Run every fuzz target for SECONDS (default 600) each, one after the other, from their seed
# corpora; print one summary line per target. Not part of CI: see README.md.
#
#   fuzz/run.sh [SECONDS]            # all targets
#   TARGETS="unpack" fuzz/run.sh 60  # some of them
#
# Findings land in fuzz/artifacts/TARGET/ (crash-*, timeout-*, oom-*), the full log in
# fuzz/logs/TARGET.log. New inputs that grew coverage go to fuzz/corpus-new/TARGET/, not
# into the committed seed corpus (which must stay small; merge by hand with `cargo fuzz
# cmin` when it is worth it).
set -euo pipefail

secs=${1:-600}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
targets=${TARGETS:-"minifile unpack unpack_gz"}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "run.sh: a nightly toolchain is needed: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz
fi

mkdir -p logs
status=0
for t in $targets; do
    seeds=corpus/$t
    mkdir -p "corpus-new/$t" "artifacts/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    set +e
    # Inputs that once failed go first: -runs=0 only executes them.
    if [ -d "regressions/$t" ]; then
        cargo +nightly fuzz run "$t" "regressions/$t" -- -runs=0 -rss_limit_mb=2048 \
            -timeout=10 >"logs/$t.regressions.log" 2>&1 || {
            echo "$t: an input of regressions/$t fails again: see logs/$t.regressions.log"
            status=1
        }
    fi
    # An input that takes more than 10 s is a hang; 2 GiB of memory is an OOM.
    cargo +nightly fuzz run "$t" "corpus-new/$t" "$seeds" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"logs/$t.log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "logs/$t.log" | tail -1 | cut -d' ' -f2)
    found=$(( $(find "artifacts/$t" -type f | wc -l) - before ))
    echo "$t: ${secs}s, ${execs:-?} execs, cov ${cov:-?}, $found new crash/timeout/oom inputs in artifacts/$t (exit $rc)"
    if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
        status=1
        grep -m1 -E '^==[0-9]+== ERROR|panicked at|SUMMARY' "logs/$t.log" || true
    fi
done
exit $status
