#!/bin/sh
# Run the kvstore libFuzzer target for a fixed number of inputs, with and
# without the uvmo reset between inputs, and replay what it reports.
#
#   tests/fuzz/libfuzzer_demo.sh [RUNS] [BUILD_DIR]     (defaults: 100000, build)
#
# Needs clang with -fsanitize=fuzzer (Debian: the clang package).  Expected:
# with the reset, RUNS inputs and no crash; without it (KV_FUZZ_RESET=0), a
# "crash" within a few hundred inputs whose input passes when run alone.
set -eu

runs=${1:-100000}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-$root/build}
case "$build" in /*) ;; *) build="$PWD/$build" ;; esac

[ -f "$build/build.ninja" ] || meson setup "$build" "$root"
ninja -C "$build" -j2 tests/fuzz/kv_libfuzzer
fuzzer="$build/tests/fuzz/kv_libfuzzer"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

echo "== with uvmo_fuzz_reset after each input: -runs=$runs"
if "$fuzzer" -runs="$runs" -seed=1 >with-reset.log 2>&1; then
	grep -E '^Done|^#[0-9]+\s+DONE' with-reset.log || true
	echo "result: clean, no crash"
else
	tail -n 20 with-reset.log
	echo "result: CRASH with the reset (a real bug in the target or in uvmo)"
	exit 1
fi

echo
echo "== without the reset (KV_FUZZ_RESET=0): -runs=$runs"
if KV_FUZZ_RESET=0 "$fuzzer" -runs="$runs" -seed=1 >no-reset.log 2>&1; then
	echo "result: no crash (unexpected: the store keeps state between inputs)"
	exit 1
fi
grep -E 'model mismatch|deadly signal|Test unit written' no-reset.log || true
crash=$(ls crash-* | head -n 1)
echo "result: crash; input bytes:$(od -An -tx1 "$crash" | tr -s ' \n' ' ' | head -c 80)"

echo
echo "== replaying that input alone"
if "$fuzzer" "$crash" >replay.log 2>&1; then
	echo "result: passes alone — the crash came from state earlier inputs left behind"
else
	tail -n 5 replay.log
	echo "result: fails alone too"
	exit 1
fi
