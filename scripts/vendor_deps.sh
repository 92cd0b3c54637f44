#!/usr/bin/env bash
# Copies the header-only dependencies (CLI11, nlohmann-json) and GoogleTest's sources from
# this Debian machine's packages into .deps/ (git-ignored), for building on a machine
# without those packages (the GPU machine; see scripts/gpu_check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .deps && mkdir -p .deps/include
cp -r /usr/include/CLI /usr/include/nlohmann .deps/include/
cp -r /usr/src/googletest .deps/googletest
