#!/bin/sh
# Build the benchmarks in a release build directory (build-bench) and run
# them.  Timings from a debug build would measure the assertions, not uvmo.
#
#   bench/run.sh [args...]         clone_bench (copy-on-write snapshots)
#   bench/run.sh clone [args...]   the same
#   bench/run.sh fault [args...]   fault_bench (faults on mappings)
#   bench/run.sh pager [size_mib]  pager_bench (the io_uring file pager)
#   bench/run.sh reset [args...]   reset_bench (fuzzing resets vs a fork server)
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-bench"

bench=clone_bench
case "${1:-}" in
clone) shift ;;
fault) bench=fault_bench; shift ;;
pager) bench=pager_bench; shift ;;
reset) bench=reset_bench; shift ;;
esac

if [ ! -f "$build/build.ninja" ]; then
	# The test suites are not needed (and need criterion): leave them out.
	meson setup "$build" "$root" -Dbuildtype=release -Dbenchmarks=true -Dtests=false
fi
ninja -C "$build" "bench/$bench"

exec "$build/bench/$bench" "$@"
