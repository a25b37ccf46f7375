#!/usr/bin/env bash
# Installs what is missing, builds everything and runs the whole test suite
# through ctest. Extra arguments go to ctest (e.g. -R vertical_slice).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${STEPFLOW_BUILD_DIR:-$root/build}"
bash "$root/tools/setup.sh"
bash "$root/tools/build.sh"
ctest --test-dir "$build" --output-on-failure --timeout 600 "$@"
