#!/usr/bin/env bash
# Configures and builds VoxMamba (Release) into build/. CUDA is built when nvcc is found
# (in PATH or /usr/local/cuda); extra CMake arguments are passed through.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
if [[ ! -f build/CMakeCache.txt ]]; then
  cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
elif [[ $# -gt 0 ]]; then
  cmake -S . -B build "$@"
fi
cmake --build build --parallel "$(nproc)"
