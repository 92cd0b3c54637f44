#!/usr/bin/env bash
# Builds VoxMamba with its tests and runs the whole suite with CTest. GPU tests skip, saying
# why, on machines without a GPU; the twin parity test skips without python3-torch. Real
# images written by other tools are fetched from Debian's packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch_test_data.sh
scripts/build.sh -DVOXMAMBA_TESTS=ON
cd build
ctest --output-on-failure --timeout 900 -j "$(nproc)"
