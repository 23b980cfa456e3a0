#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds with the expensive
# validation mode on (every clone-tree invariant is checked after every
# operation), and runs every criterion suite with meson test.
#   scripts/test.sh [BUILD_DIR] [extra meson setup options...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

build=${1:-build-test}
shift || true
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" -Dvalidation=true -Dbenchmarks=false "$@"
fi
ninja -C "$build"
status=0
meson test -C "$build" --print-errorlogs --num-processes 2 || status=$?

# Criterion's own summary of every suite, and the totals.
scripts/criterion-summary.sh "$build"
exit $status
