#!/bin/sh
# Build the benchmarks in a release build directory (build-bench) and run
# them.  Timings from a debug build would measure the assertions, not uvmo.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-bench"

if [ ! -f "$build/build.ninja" ]; then
	# The test suites are not needed (and need criterion): leave them out.
	meson setup "$build" "$root" -Dbuildtype=release -Dbenchmarks=true -Dtests=false
fi
ninja -C "$build" bench/clone_bench

exec "$build/bench/clone_bench" "$@"
