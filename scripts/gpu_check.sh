#!/usr/bin/env bash
# The GPU machine's check (see ../shared/docs/gpu.md): build the engine with CUDA and cuDNN,
# ITK and the viewer off; run the whole CTest suite (GPU tests included); parity with the
# PyTorch twin on the GPU (fp32, bf16 and fp16); the engine's forward benchmarks; and the fair
# PyTorch baseline timed in the same run (tools/bench_twin.py). Header-only dependencies
# and GoogleTest's sources travel in .deps/ (scripts/vendor_deps.sh) because that machine
# has no Debian packages.
# STAGES (environment) picks stages: "build tests parity bench twin" by default, and also
# "kernels" (every kernel of one base 128^3 fp16 forward timed by Nsight Compute, without the
# per-op waits of --profile: tools/kernel_times.py prints the time and SM clock per op class
# and writes $OUT/kernels.csv)
# and "segment" (scripts/gpu_segment.sh: `voxmamba segment` on a 256^3 volume with TTA, from
# the bundle scripts/gpu_bundle.sh made, carried in .gpu-bundle)
# and "trained" (the twin of TRAINED_CONFIG, default base, trained for TRAINED_STEPS, default
# 300, on tools/train_twin_synthetic.py's task on the GPU, then parity in bf16 and fp16 on its
# held-out 128^3 case, with tools/precision_margins.py's breakdown on the GPU's twin: issue 4's
# parity on weights that decide something; fp16 may overflow there). TWIN_ARGS adds arguments
# to bench_twin.py (e.g. --compile); TWIN_ENGINE_PRECISION the engine's precision there (bf16). Logs go to $OUT or /tmp/gpu-check.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu-check}
stages=" ${STAGES:-build tests parity bench twin} "
mkdir -p "$out"
nvidia=/opt/torch/.venv/lib/python3.12/site-packages/nvidia
export LD_LIBRARY_PATH="$nvidia/cudnn/lib:$nvidia/nccl/lib:${LD_LIBRARY_PATH:-}"
voxmamba=build-gpu/cli/voxmamba
bench=build-gpu/bench/voxmamba_forward_benchmark
status=0
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cudnn', torch.backends.cudnn.version())"
  if [[ $stages == *" build "* ]]; then
    cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DVOXMAMBA_GUI=OFF -DVOXMAMBA_ITK=OFF \
      -DVOXMAMBA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DVOXMAMBA_EXTRA_INCLUDE="$PWD/.deps/include" \
      -DVOXMAMBA_CUDNN_ROOT="$nvidia/cudnn" -DVOXMAMBA_GTEST_SOURCE_DIR="$PWD/.deps/googletest" || exit 1
    time cmake --build build-gpu -j16 || exit 1
  fi
  if [[ $stages == *" tests "* ]]; then
    (cd build-gpu && ctest --output-on-failure -j8 --timeout 600) || status=1
  fi
  if [[ $stages == *" parity "* ]]; then
    for run in "cuda fp32 small 64 0.5" "cuda fp32 base 32 0.5" "cuda bf16 small 64 0.5" "cuda bf16 base 128 0" \
               "cuda bf16 base 128 0.5" "cuda fp16 small 64 0.5" "cuda fp16 base 128 0" "cuda fp16 base 128 0.5"; do
      set -- $run
      echo "parity engine=$1 precision=$2 config=$3 size=$4 offset_scale=$5"
      ENGINE_DEVICE=$1 ENGINE_PRECISION=$2 PYTHON=python3 tools/parity_run.sh $voxmamba /tmp/parity "$3" "$4" cuda "$5" \
        || status=1
    done
  fi
  if [[ $stages == *" bench "* ]]; then
    for run in "bf16 small 128" "bf16 base 128" "fp16 base 128" "fp32 base 128"; do
      set -- $run
      $bench --device cuda --precision "$1" --config "$2" --size "$3" --repeats 20 --profile 1 || status=1
    done
  fi
  if [[ $stages == *" kernels "* ]]; then
    if command -v ncu >/dev/null; then
      ncu --clock-control none --cache-control none --csv --print-units base \
        --metrics gpu__time_duration.sum,sm__cycles_elapsed.avg.per_second \
        $bench --device cuda --precision fp16 --config base --size 128 --repeats 1 > /tmp/voxmamba_ncu.csv \
        && python3 tools/kernel_times.py /tmp/voxmamba_ncu.csv --table "$out/kernels.csv" || status=1
    else
      echo "kernels: Nsight Compute (ncu) is not installed here; skipped"
    fi
  fi
  if [[ $stages == *" segment "* ]]; then
    OUT="$out" scripts/gpu_segment.sh --precision bf16 || status=1
  fi
  if [[ $stages == *" trained "* ]]; then
    trained=/tmp/trained_${TRAINED_CONFIG:-base}
    python3 tools/train_twin_synthetic.py --out "$trained" --config "${TRAINED_CONFIG:-base}" \
      --steps "${TRAINED_STEPS:-300}" --size 32 --val-size 128 --device cuda | tail -1 || status=1
    for precision in bf16 fp16; do
      echo "parity on trained weights: engine=cuda precision=$precision"
      MODEL=$trained/trained.h5 INPUT=$trained/val_input.npy ENGINE_DEVICE=cuda ENGINE_PRECISION=$precision \
        PYTHON=python3 tools/parity_run.sh $voxmamba /tmp/parity "${TRAINED_CONFIG:-base}" 128 cuda || status=1
    done
    python3 tools/precision_margins.py --weights "$trained/trained.h5" --input "$trained/val_input.npy" \
      --labels "$trained/val_labels.npy" --device cuda > "$out/trained_margins.json" || status=1
  fi
  if [[ $stages == *" twin "* ]]; then
    $voxmamba init --config base --classes 3 --seed 1 -o /tmp/base_bench.h5 --force >/dev/null
    python3 -c "import numpy as n; n.save('/tmp/bench_in.npy', n.random.RandomState(0).standard_normal((1,128,128,128,1)).astype(n.float32))"
    python3 tools/bench_twin.py --weights /tmp/base_bench.h5 --input /tmp/bench_in.npy --repeats 20 \
      --engine "$bench --device cuda --precision ${TWIN_ENGINE_PRECISION:-bf16} --model /tmp/base_bench.h5 --input /tmp/bench_in.npy --repeats 20" \
      --out "$out/bench_compare.json" ${TWIN_ARGS:-} || status=1
  fi
  exit $status
} 2>&1 | tee "$out/gpu_check.log"
exit "${PIPESTATUS[0]}"
