#!/usr/bin/env bash
# Print criterion's per-suite summaries from a meson test log, then the
# totals as one line: "criterion: N passed, N failed".
#   scripts/criterion-summary.sh BUILD_DIR [BUILD_DIR...]
set -uo pipefail
logs=()
for b in "$@"; do
	[ -f "$b/meson-logs/testlog.txt" ] && logs+=("$b/meson-logs/testlog.txt")
done
((${#logs[@]})) || exit 0
lines=$(grep -ah "Synthesis:" "${logs[@]}" | sed 's/\x1b\[[0-9;]*m//g')
[ -n "$lines" ] || exit 0
printf '%s\n' "$lines"
printf '%s\n' "$lines" | awk -F'|' '
	{ for (i = 1; i <= NF; i++) {
		if ($i ~ /Passing:/) { split($i, a, ":"); pass += a[2] }
		if ($i ~ /Failing:/) { split($i, a, ":"); fail += a[2] } } }
	END { printf "criterion: %d passed, %d failed\n", pass, fail }'
