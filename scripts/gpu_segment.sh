#!/usr/bin/env bash
# `voxmamba segment` end to end on the GPU machine, which has no ITK (../shared/docs/gpu.md),
# from the bundle that scripts/gpu_bundle.sh made here: .gpu-bundle/voxmamba (built with
# ITK + CUDA + cuDNN) and .gpu-bundle/libs.tar.xz (ITK, GDCM, HDF5, OpenBLAS, ...). Run from
# the repository root with the run tool's carry [".gpu-bundle"]:
#
#   scripts/gpu_segment.sh [extra segment arguments, e.g. --precision bf16]
#
# It extracts the libraries to a temporary folder; checks that the binary resolves every
# library (bundle first, then /usr/local/cuda/lib64 and cuDNN from PyTorch's environment; that
# LD_LIBRARY_PATH is given to the voxmamba commands only, never to python3 or the rest); writes
# a synthetic CT phantom (scripts/make_phantom.py, SIZE^3 int16, 1 mm); creates a seeded model
# (init --config CONFIG --classes 3 --seed 1 --patch-size PATCH^3 --spacing 1 1 1, so the 1 mm
# image is not resampled); runs a small warm-up segment (CUDA context, any PTX JIT, cuDNN), then
# times `segment --tta` on the phantom from the shell; and prints one JSON line
# {"benchmark":"segment_gpu", ...}. Writes $OUT/seg<SIZE>.nii.gz, $OUT/seg<SIZE>_stats.json and
# $OUT/segment_gpu.log. Exits non-zero on any failure.
#
# Environment: OUT (default /tmp/gpu-segment), SIZE (256), CONFIG (base), PATCH (128),
# DEVICE (cuda), TTA (1; 0 passes --no-tta), WARMUP (1; 0 skips the warm-up), WARMUP_SIZE (64),
# MODEL (/tmp/seg_model.h5), BUNDLE (.gpu-bundle), PYTHON (python3), CUDNN_LIB_DIR (extra
# folder searched for cuDNN), SEGMENT_TIMEOUT (seconds; none by default).
# Local check without a GPU (small, on the CPU):
#   SIZE=64 CONFIG=small PATCH=64 DEVICE=cpu TTA=0 WARMUP=0 PYTHON=/usr/bin/python3 \
#     OUT=/tmp/gpu-segment-test scripts/gpu_segment.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu-segment}
mkdir -p "$out"
log=$out/segment_gpu.log

main() {
  local size=${SIZE:-256} config=${CONFIG:-base} patch=${PATCH:-128} device=${DEVICE:-cuda}
  local tta=${TTA:-1} warmup=${WARMUP:-1} warmup_size=${WARMUP_SIZE:-64}
  local model=${MODEL:-/tmp/seg_model.h5} bundle=${BUNDLE:-.gpu-bundle} python=${PYTHON:-python3}
  local extra=("$@")
  die() { echo "gpu_segment: error: $*" >&2; exit 1; }

  [[ -f $bundle/voxmamba && -f $bundle/libs.tar.xz ]] ||
    die "$bundle/voxmamba or $bundle/libs.tar.xz missing: run scripts/gpu_bundle.sh here and carry $bundle"
  command -v "$python" >/dev/null || die "no $python"
  "$python" -c 'import numpy' 2>/dev/null || die "$python has no numpy"

  tmp=$(mktemp -d /tmp/voxmamba-gpu.XXXXXX)
  sampler=
  trap 'if [[ -n $sampler ]]; then kill "$sampler" 2>/dev/null || true; fi; rm -rf -- "$tmp"' EXIT
  mkdir -p "$tmp/lib"
  if command -v xz >/dev/null; then
    tar -C "$tmp/lib" -xJf "$bundle/libs.tar.xz" || die "cannot extract $bundle/libs.tar.xz"
  else
    "$python" -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' \
      "$bundle/libs.tar.xz" "$tmp/lib" || die "cannot extract $bundle/libs.tar.xz"
  fi
  cp "$bundle/voxmamba" "$tmp/voxmamba" && chmod +x "$tmp/voxmamba"
  local bin=$tmp/voxmamba

  # Bundled libraries first; then CUDA and cuDNN (not bundled: the machine has its own).
  local dirs=("$tmp/lib") d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/lib \
           /opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib ${CUDNN_LIB_DIR:-}; do
    if [[ -d $d ]]; then dirs+=("$d"); fi
  done
  local libpath
  libpath=$(IFS=:; echo "${dirs[*]}")
  vm() { LD_LIBRARY_PATH="$libpath" "$bin" "$@"; }

  echo "== machine"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
  fi
  local cpu
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  echo "cpu: $cpu ($(nproc) cores)"
  echo "== bundle"
  if [[ -f $bundle/build_info.txt ]]; then cat "$bundle/build_info.txt"; fi
  echo "LD_LIBRARY_PATH for voxmamba: $libpath"

  # The binary was compiled for the bundling machine's CPU when built with -march=native: name
  # the instruction-set extensions this CPU lacks (a SIGILL below would be why).
  if [[ -f $bundle/build_info.txt ]]; then
    local want have missing=() f
    want=$(sed -n 's/^build_host_isa: //p' "$bundle/build_info.txt")
    have=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2-) "
    for f in $want; do
      if [[ $have != *" $f "* ]]; then missing+=("$f"); fi
    done
    if ((${#missing[@]})) && grep -qE 'VOXMAMBA_NATIVE=ON|avx512_instructions: [1-9]' "$bundle/build_info.txt"; then
      echo "WARNING: this CPU lacks ${missing[*]} that the bundling machine has, and the binary was" \
           "built for that machine (-march=native): an illegal instruction (exit 132) may follow" >&2
    fi
  fi

  echo "== ldd"
  local ldd_out
  ldd_out=$(LD_LIBRARY_PATH="$libpath" ldd "$bin" 2>&1) || die "ldd failed: $ldd_out"
  echo "$ldd_out"
  if grep -q 'not found' <<<"$ldd_out"; then
    echo "gpu_segment: unresolved libraries:" >&2
    grep 'not found' <<<"$ldd_out" >&2
    exit 1
  fi
  # cuDNN 9 loads its engine libraries at run time: check those resolve too.
  local cudnn
  cudnn=$(awk '$1 == "libcudnn.so.9" { print $3 }' <<<"$ldd_out")
  if [[ -n $cudnn ]]; then
    local sub sub_out
    for sub in "$(dirname "$(readlink -f "$cudnn")")"/libcudnn_*.so.9; do
      [[ -e $sub ]] || continue
      sub_out=$(LD_LIBRARY_PATH="$libpath" ldd "$sub" 2>&1 | grep 'not found' || true)
      [[ -z $sub_out ]] || die "$(basename "$sub") has unresolved libraries: $sub_out"
    done
  fi
  # Anything neither bundled nor CUDA/cuDNN comes from this machine's system (glibc, libstdc++,
  # libgcc_s are expected there; anything else is worth knowing).
  local system_libs
  system_libs=$(awk -v b="$tmp/lib/" '$2 == "=>" && index($3, b) != 1 && $3 !~ /cuda|cudnn|nvidia/ { print $1 }' \
                <<<"$ldd_out" | grep -vE '^(libc|libm|libmvec|libpthread|libdl|librt|libresolv|libgcc_s|libstdc\+\+)\.so' || true)
  echo "from the system besides glibc/libstdc++/libgcc_s: ${system_libs:-none}"

  echo "== input"
  local vol=$tmp/ct${size}.nii
  "$python" scripts/make_phantom.py "$vol" --size "$size" || die "make_phantom.py failed"
  local info
  info=$(vm info "$vol" --json) || die "voxmamba info $vol failed (exit $?)"
  INFO_JSON=$info "$python" - "$size" <<'EOF' || die "voxmamba info does not read the phantom as expected: $info"
import json, os, sys
info, n = json.loads(os.environ["INFO_JSON"]), int(sys.argv[1])
assert info["size"] == [n, n, n], info["size"]
assert all(abs(s - 1) < 1e-6 for s in info["spacing"]), info["spacing"]
print("voxmamba info: size", info["size"], "spacing", info["spacing"], "origin", info["origin"],
      info["pixel_type"], "range", [info["min"], info["max"]])
EOF

  echo "== model"
  vm init --config "$config" --classes 3 --seed 1 -o "$model" --force \
    --patch-size "$patch" "$patch" "$patch" --spacing 1 1 1 || die "voxmamba init failed"

  local tta_flag=--tta tta_json=true a
  [[ $tta == 1 ]] || { tta_flag=--no-tta; tta_json=false; }
  for a in "${extra[@]}"; do
    if [[ $a == --no-tta ]]; then tta_json=false; fi
  done

  local warmup_seconds=null t0 t1
  if [[ $warmup == 1 ]]; then
    echo "== warm-up: ${warmup_size}^3, --no-tta (CUDA context, PTX JIT cache, cuDNN)"
    "$python" scripts/make_phantom.py "$tmp/warmup.nii" --size "$warmup_size" --seed 1 >/dev/null ||
      die "make_phantom.py failed"
    t0=$(date +%s.%N)
    vm segment -i "$tmp/warmup.nii" -o "$tmp/warmup_seg.nii.gz" -m "$model" --device "$device" --no-tta \
      "${extra[@]}" || die "warm-up segment failed (exit $?)"
    t1=$(date +%s.%N)
    warmup_seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    echo "warm-up: $warmup_seconds s"
  fi

  echo "== segment ${size}^3 $tta_flag ${extra[*]}"
  local seg=$out/seg${size}.nii.gz stats=$out/seg${size}_stats.json
  rm -f "$seg" "$stats"
  local mem_before=null
  if [[ $device == cuda* ]] && command -v nvidia-smi >/dev/null; then
    mem_before=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 | head -1 || true)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 -lms 200 >"$tmp/mem.txt" 2>/dev/null &
    sampler=$!
  fi
  local timeout_cmd=()
  if [[ -n ${SEGMENT_TIMEOUT:-} ]]; then timeout_cmd=(timeout "$SEGMENT_TIMEOUT"); fi
  local rc=0
  t0=$(date +%s.%N)
  "${timeout_cmd[@]}" env LD_LIBRARY_PATH="$libpath" "$bin" segment -i "$vol" -o "$seg" -m "$model" --device "$device" \
    $tta_flag --stats "$stats" "${extra[@]}" 2>&1 | tee "$tmp/segment.txt" || rc=${PIPESTATUS[0]}
  t1=$(date +%s.%N)
  if [[ -n $sampler ]]; then kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; sampler=; fi
  if ((rc != 0)); then
    case $rc in
      132) die "voxmamba segment: illegal instruction (exit 132): the binary uses CPU instructions this CPU lacks;" \
               "rebuild it with -DVOXMAMBA_NATIVE=OFF -DCMAKE_CXX_FLAGS=-march=x86-64-v3 and bundle again" ;;
      124) die "voxmamba segment: timed out after ${SEGMENT_TIMEOUT}s" ;;
      *) die "voxmamba segment failed (exit $rc)" ;;
    esac
  fi
  [[ -s $seg ]] || die "no label map written ($seg)"
  [[ -s $stats ]] || die "no stats written ($stats)"
  local seconds
  seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  echo "== result"
  vm info "$seg" || die "voxmamba info $seg failed"
  cat "$stats"; echo
  ls -l "$seg" "$stats"

  # Progress bar "N/N passes" and summary "NAME: OUTPUT (S s, N passes)" from the tool.
  local gpu_name=null driver=null
  if [[ $device == cuda* ]] && command -v nvidia-smi >/dev/null; then
    gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader -i 0 | head -1 || true)
    driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader -i 0 | head -1 || true)
  fi
  BENCH_TXT=$tmp/segment.txt BENCH_MEM=$tmp/mem.txt BENCH_INFO=$bundle/build_info.txt \
    "$python" - "$size" "$config" "$patch" "$tta_json" "$seconds" "$warmup_seconds" "$device" \
    "$gpu_name" "$driver" "$mem_before" "$cpu" "${extra[@]}" <<'EOF' || die "could not write the JSON line"
import json, os, re, sys
size, config, patch, tta, seconds, warmup, device, gpu, driver, mem_before, cpu, *extra = sys.argv[1:]
text = open(os.environ["BENCH_TXT"], errors="replace").read()
summary = re.findall(r"\(([0-9.]+) s, ([0-9]+) passes\)", text)
bar = re.findall(r"([0-9]+)/([0-9]+) passes", text)
passes = int(summary[-1][1]) if summary else (int(bar[-1][1]) if bar else None)
mem = []
if os.path.exists(os.environ["BENCH_MEM"]):
    mem = [int(l) for l in open(os.environ["BENCH_MEM"]).read().split() if l.isdigit()]
binary = None
if os.path.exists(os.environ["BENCH_INFO"]):
    for line in open(os.environ["BENCH_INFO"]):
        if line.startswith(("binary:", "cmake:", "gpu_code:")):
            binary = (binary + "; " if binary else "") + line.strip()
precision = "auto"
for i, a in enumerate(extra):
    if a == "--precision" and i + 1 < len(extra):
        precision = extra[i + 1]
    elif a.startswith("--precision="):
        precision = a.split("=", 1)[1]
result = {
    "benchmark": "segment_gpu", "input": [int(size)] * 3, "config": config, "patch": [int(patch)] * 3,
    "tta": tta == "true", "precision": precision, "extra_args": extra,
    "seconds": float(seconds), "tool_seconds": float(summary[-1][0]) if summary else None, "passes": passes,
    "warmup_seconds": None if warmup == "null" else float(warmup),
    "device": gpu if device.startswith("cuda") and gpu not in ("null", "") else device,
    "driver": None if driver == "null" else driver,
    "gpu_mem_before_mib": int(mem_before) if mem_before.isdigit() else None,
    "gpu_mem_peak_mib": max(mem) if mem else None, "cpu": cpu, "build": binary,
}
print(json.dumps(result))
EOF
}

main "$@" 2>&1 | tee "$log"
