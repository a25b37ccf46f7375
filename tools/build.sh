#!/usr/bin/env bash
# Configures (once) and builds Stepflow into build/ with CMake + Ninja
# (+ ccache when present). Extra arguments are ninja targets.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${STEPFLOW_BUILD_DIR:-$root/build}"
if [[ ! -f "$build/build.ninja" ]]; then
  cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="${STEPFLOW_BUILD_TYPE:-RelWithDebInfo}"
fi
ninja -C "$build" "$@"
