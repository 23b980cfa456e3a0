#!/usr/bin/env bash
# uvmo's main job, end to end: installs what is missing, builds, and runs
# the demo (VMOs, snapshot clones at several depths, slices, isolation and
# memory figures).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

build=build-demo
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" -Dbuildtype=release -Dtests=false -Dbenchmarks=false >/dev/null
fi
ninja -C "$build" >/dev/null
exec "$build/src/uvmo" demo
