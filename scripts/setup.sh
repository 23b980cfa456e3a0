#!/usr/bin/env bash
# Install what uvmo needs to build, test and run, if it is missing.
# Debian 12 (as root, or with sudo).  Safe to run again.
set -euo pipefail

packages=(gcc meson ninja-build pkg-config liburing-dev libbsd-dev libcriterion-dev libnuma-dev)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "setup: installing ${missing[*]}"
	sudo_cmd=()
	[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
	export DEBIAN_FRONTEND=noninteractive
	"${sudo_cmd[@]}" apt-get update -qq
	"${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
