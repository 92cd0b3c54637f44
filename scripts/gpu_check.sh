#!/usr/bin/env bash
# The GPU machine's check (see ../shared/docs/gpu.md): build the engine with CUDA and with
# ITK and the viewer off, run the whole CTest suite (GPU tests included), then parity with
# the PyTorch twin on the GPU. Header-only dependencies and GoogleTest's sources travel in
# .deps/ (scripts/vendor_deps.sh) because that machine has no Debian packages.
# Logs go to $OUT (the device tool's output folder) or /tmp/gpu-check.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
status=0
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cudnn', torch.backends.cudnn.version())"
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DVOXMAMBA_GUI=OFF -DVOXMAMBA_ITK=OFF \
    -DVOXMAMBA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DVOXMAMBA_EXTRA_INCLUDE="$PWD/.deps/include" \
    -DVOXMAMBA_GTEST_SOURCE_DIR="$PWD/.deps/googletest" || exit 1
  cmake --build build-gpu -j16 || exit 1
  (cd build-gpu && ctest --output-on-failure -j8 --timeout 600) || status=1
  for model in small base; do
    build-gpu/cli/voxmamba init --config $model --classes 3 --seed 1 -o "/tmp/$model.h5" --force >/dev/null
    build-gpu/cli/voxmamba info "/tmp/$model.h5" --json | python3 -c "import json,sys; print('engine $model parameters', json.load(sys.stdin)['parameters'])"
  done
  for engine in cpu cuda; do
    for run in "small 64 0" "small 64 0.5" "base 32 0" "base 32 0.5" "base 128 0.5"; do
      set -- $run
      if [[ $engine == cpu && $2 == 128 ]]; then continue; fi
      echo "parity engine=$engine config=$1 size=$2 offset_scale=$3"
      ENGINE_DEVICE=$engine PYTHON=python3 tools/parity_run.sh build-gpu/cli/voxmamba /tmp/parity "$1" "$2" cuda "$3" || status=1
    done
  done
  for run in "small 128" "base 64" "base 128"; do
    set -- $run
    build-gpu/bench/voxmamba_forward_benchmark --device cuda --config "$1" --size "$2" --repeats 20 --profile 1
  done
  (cd tools && python3 bench_twin.py --config base --size 128 --repeats 10) || status=1
  exit $status
} 2>&1 | tee "$out/gpu_check.log"
exit "${PIPESTATUS[0]}"
