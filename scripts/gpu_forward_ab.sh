#!/usr/bin/env bash
# The forward benchmark of two trees in one run on the GPU machine, interleaved, for changes
# that cannot sit behind a switch (an op's interface, a model's layers): this tree's build
# (build-gpu, as scripts/gpu_check.sh makes it) against a baseline tree whose sources are in
# BASELINE, made here with
#     mkdir -p scratch/baseline && git archive REV | tar -x -C scratch/baseline
# and carried with the command (scratch/ is ignored). Builds only the benchmark, in
# BASELINE/build-gpu, then times `base` 1x128^3 with the CUDA graph, fp16 then bf16 per tree,
# ROUNDS rounds (2 by default), each line to $OUT/forward_ab.jsonl with "tree" set to
# "baseline" or "this" and "round". Compare the two trees' medians within a round.
#     BASELINE=scratch/baseline scripts/gpu_forward_ab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=${BASELINE:?set BASELINE to the folder of the baseline sources}
out=${OUT:-/tmp/gpu-forward-ab}
rounds=${ROUNDS:-2}
mkdir -p "$out"
[[ -f $baseline/CMakeLists.txt ]] || { echo "error: $baseline holds no source tree (CMakeLists.txt)" >&2; exit 2; }
nvidia=/opt/torch/.venv/lib/python3.12/site-packages/nvidia
export LD_LIBRARY_PATH="$nvidia/cudnn/lib:$nvidia/nccl/lib:${LD_LIBRARY_PATH:-}"

build() {  # source dir, build dir
  cmake -S "$1" -B "$2" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVOXMAMBA_GUI=OFF -DVOXMAMBA_ITK=OFF \
    -DVOXMAMBA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DVOXMAMBA_EXTRA_INCLUDE="$PWD/.deps/include" \
    -DVOXMAMBA_CUDNN_ROOT="$nvidia/cudnn" -DVOXMAMBA_GTEST_SOURCE_DIR="$PWD/.deps/googletest" >/dev/null
  cmake --build "$2" -j16 --target voxmamba_forward_benchmark >/dev/null
}
build . build-gpu
build "$baseline" "$baseline/build-gpu"

declare -A bench=([this]=build-gpu/bench/voxmamba_forward_benchmark
                  [baseline]=$baseline/build-gpu/bench/voxmamba_forward_benchmark)
for round in $(seq 1 "$rounds"); do
  for tree in baseline this; do
    for precision in fp16 bf16; do
      "${bench[$tree]}" --device cuda --precision "$precision" --config base --size 128 --repeats 20 --graph 1 |
        python3 -c "
import json, sys
line = json.loads(sys.stdin.read().strip().splitlines()[-1])
line.update(tree='$tree', round=$round)
print(json.dumps(line))
print('$tree', '$precision', 'round $round', line['median_ms'], 'ms', file=sys.stderr)" >> "$out/forward_ab.jsonl"
    done
  done
done
