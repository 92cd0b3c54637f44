#!/usr/bin/env bash
# Times `voxmamba segment` end to end (read, preprocess, sliding window, write) on the
# Colin27 T1 (181 x 217 x 181, from Debian's mricron-data via scripts/fetch_test_data.sh)
# with a seeded `small` model, and prints one JSON line.
# Usage: bench/segment_benchmark.sh [DEVICE] [extra segment flags...]   (DEVICE: cpu, cuda, auto)
set -euo pipefail
cd "$(dirname "$0")/.."
device=${1:-cpu}
shift || true
colin=.testdata/root/usr/share/mricron/templates/ch2.nii.gz
[[ -f $colin ]] || scripts/fetch_test_data.sh >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
build/cli/voxmamba init --config small --classes 3 --seed 1 -o "$work/model.h5" >/dev/null
start=$(date +%s.%N)
build/cli/voxmamba segment -i "$colin" -o "$work/seg.nii.gz" -m "$work/model.h5" --device "$device" "$@" 2>"$work/log"
end=$(date +%s.%N)
passes=$(tr '\r' '\n' <"$work/log" | sed -n 's/.*(\([0-9.]*\) s, \([0-9]*\) passes).*/\2/p' | tail -1)
printf '{"benchmark": "segment", "input": "Colin27 T1 181x217x181", "config": "small", "patch": [128, 128, 128], "device": "%s", "flags": "%s", "threads": %s, "passes": %s, "seconds": %.1f}\n' \
  "$device" "$*" "$(nproc)" "${passes:-null}" "$(echo "$end - $start" | bc)"
