#!/bin/sh
# SPDX-License-Identifier: MIT
#
# soak.sh SECONDS [soak options...]
#
# Builds the differential soak runner (validation build, in build-soak/) and
# runs fresh random seeds against the reference model until SECONDS have
# elapsed.  Stops at the first failure, printing the seed, the command that
# replays it, and a shrunk minimal sequence of operations that still fails.
# Extra options go to the runner: --seed BASE, --nops N, --flags F,
# --or-flags F (e.g. 0x100: skip the leak bound while a known leak is open),
# --no-shrink.
set -eu

if [ $# -lt 1 ]; then
	echo "usage: $0 SECONDS [--seed BASE] [--nops N] [--flags F] [--or-flags F] [--no-shrink]" >&2
	exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-soak"

if [ ! -d "$build" ]; then
	meson setup "$build" "$root" -Dvalidation=true -Dbenchmarks=false >/dev/null
fi
ninja -C "$build" tests/soak >/dev/null

# Failing recordings (soak-fail-SEED.ops) are written to the current
# directory; keep them out of the source tree.
cd "$build"
exec ./tests/soak "$@"
