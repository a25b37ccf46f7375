#!/usr/bin/env bash
# Installs every Debian package that building Stepflow, running its tests and
# running `stepflow dev` need. Idempotent: when everything is present it only
# checks and returns (no apt-get update).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev librocksdb-dev librdkafka-dev prometheus-cpp-dev
  rapidjson-dev libgtest-dev libgmock-dev libbenchmark-dev
  libssl-dev zlib1g-dev libpcre2-dev libgoogle-perftools-dev
  python3 python3-yaml python3-grpcio python3-protobuf python3-grpc-tools
  curl
  # An outside Kafka client: tests/eventbus_e2e_test reads a bus topic with it.
  kcat
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
