#!/usr/bin/env bash
# `voxmamba segment` end to end (scripts/gpu_segment.sh: 256^3 phantom, TTA) with two bundle
# binaries in one run, interleaved, for changes whose effect is outside the forward pass (model
# load, reading and writing images, CUDA start-up) and so outside voxmamba_forward_benchmark.
# Both binaries share the bundle's libraries: make the bundle of this tree with
# scripts/gpu_bundle.sh, then copy the baseline's binary (built the same way from the
# baseline commit) to .gpu-bundle/voxmamba_baseline, and carry .gpu-bundle (about 45 MB).
# Writes one JSON line a run to $OUT/segment_ab.jsonl ("tree": "baseline" or "this", "round")
# and every run's log to $OUT/segment_ab.log, then checks that the two label maps decompress to
# the same bytes (the network and its inputs are the same). Extra arguments go to segment.
#     ROUNDS=3 scripts/gpu_segment_ab.sh --precision bf16
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu-segment-ab}
rounds=${ROUNDS:-3}
mkdir -p "$out"
[[ -x .gpu-bundle/voxmamba && -x .gpu-bundle/voxmamba_baseline && -f .gpu-bundle/libs.tar.xz ]] || {
  echo "gpu_segment_ab: needs .gpu-bundle/voxmamba, voxmamba_baseline and libs.tar.xz (see the top of this file)" >&2
  exit 2
}
for tree in baseline this; do
  bundle=/tmp/voxmamba-ab-bundle-$tree
  rm -rf "$bundle" && mkdir -p "$bundle"
  ln -s "$PWD/.gpu-bundle/libs.tar.xz" "$bundle/libs.tar.xz"
  if [[ -f .gpu-bundle/build_info.txt ]]; then cp .gpu-bundle/build_info.txt "$bundle/"; fi
  binary=.gpu-bundle/voxmamba
  if [[ $tree == baseline ]]; then binary=.gpu-bundle/voxmamba_baseline; fi
  cp "$binary" "$bundle/voxmamba"
done
status=0
for round in $(seq 1 "$rounds"); do
  for tree in baseline this; do
    run=/tmp/voxmamba-ab-$tree-$round
    BUNDLE=/tmp/voxmamba-ab-bundle-$tree OUT=$run scripts/gpu_segment.sh "$@" >"$run.log" 2>&1 || status=1
    result=$(grep '^{"benchmark": "segment_gpu"' "$run.log" | tail -1)
    echo "{\"tree\": \"$tree\", \"round\": $round, \"result\": ${result:-null}}" | tee -a "$out/segment_ab.jsonl"
    cat "$run.log" >>"$out/segment_ab.log"
  done
done
python3 - /tmp/voxmamba-ab-baseline-1/seg${SIZE:-256}.nii.gz /tmp/voxmamba-ab-this-1/seg${SIZE:-256}.nii.gz <<'PY' || status=1
import gzip, os, sys
maps = [gzip.decompress(open(path, "rb").read()) for path in sys.argv[1:]]
sizes = [os.path.getsize(path) for path in sys.argv[1:]]
print("label maps: baseline %d bytes, this %d bytes; decompressed %d and %d bytes, identical: %s"
      % (sizes[0], sizes[1], len(maps[0]), len(maps[1]), maps[0] == maps[1]))
sys.exit(0 if maps[0] == maps[1] else 1)
PY
exit $status
