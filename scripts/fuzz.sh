#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time and reports executions and crashes.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 60); TARGETs default to all of fuzz/Cargo.toml's. Not part of
# the default CI run. cargo-fuzz needs nightly compiler flags (-Zsanitizer); on a stable
# toolchain RUSTC_BOOTSTRAP=1 unlocks them. Corpora grow in fuzz/corpus/<target> (git-ignored),
# seeded from fuzz/seeds/<target>; crashes land in fuzz/artifacts/<target>. Exit status 1 when
# any target found a crash.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(stamp_decode request_body)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi

export RUSTC_BOOTSTRAP=1

failed=0
summary=()
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    artifacts="fuzz/artifacts/$target"
    log="fuzz/target/$target.log"
    mkdir -p "$corpus" "$artifacts"
    dict=()
    if [ -f "fuzz/dict/$target.dict" ]; then
        dict=("-dict=fuzz/dict/$target.dict")
    fi
    # request_body keeps a sled store and keys in a temporary directory that the fuzzer
    # process cannot delete on exit (libFuzzer exits without running destructors).
    tmp="$PWD/fuzz/target/tmp/$target"
    mkdir -p "$tmp"
    before=$(find "$artifacts" -type f | wc -l)
    echo "== $target: ${seconds}s" >&2
    status=0
    TMPDIR="$tmp" cargo fuzz run --fuzz-dir fuzz "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1 "${dict[@]}" >"$log" 2>&1 || status=$?
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -1)
    rate=$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}' | tail -1)
    rm -rf "$tmp"
    after=$(find "$artifacts" -type f | wc -l)
    line="$target: ${execs:-?} executions, ${rate:-?}/s, corpus $(find "$corpus" -type f | wc -l) inputs"
    if [ "$status" -ne 0 ] || [ "$after" -gt "$before" ]; then
        failed=1
        line="$line, CRASH (exit $status): see $log and $artifacts"
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -8 >&2 || true
    else
        line="$line, no crashes"
    fi
    summary+=("$line")
done
printf '%s\n' "${summary[@]}"
exit "$failed"
