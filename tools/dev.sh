#!/usr/bin/env bash
# Installs what is missing, builds, and runs `stepflow dev`: the whole
# cluster in one process. Arguments go to `stepflow dev` (try --help).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/tools/setup.sh"
bash "$root/tools/build.sh" stepflow
exec "${STEPFLOW_BUILD_DIR:-$root/build}/tools/cli/stepflow" dev "$@"
