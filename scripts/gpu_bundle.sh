#!/usr/bin/env bash
# Packs the voxmamba binary built here (CUDA + ITK + cuDNN) with the shared libraries the GPU
# machine lacks (ITK, GDCM, HDF5, OpenBLAS and their dependencies), so that
# scripts/gpu_segment.sh can run `voxmamba segment` there (see ../shared/docs/gpu.md: that
# machine has no ITK). Writes .gpu-bundle/voxmamba, .gpu-bundle/libs.tar.xz (the libraries
# under their sonames), .gpu-bundle/libs.txt and .gpu-bundle/build_info.txt; carry
# ".gpu-bundle" to the device.
#
# Left out on purpose: glibc (libc, libm, libmvec, ld-linux, libpthread, libdl, librt,
# libresolv, libutil, libnsl, libanl, ...), libgcc_s and libstdc++ (the GPU machine's are
# newer; mixing glibc is fatal) and every CUDA library (cudart, cuBLAS, cuBLASLt, cuDNN, ...:
# the GPU machine has its own).
#
# Usage: scripts/gpu_bundle.sh [BINARY]   (default build/cli/voxmamba)
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-build/cli/voxmamba}
bundle=.gpu-bundle
[[ -x $binary ]] || { echo "gpu_bundle: $binary is not an executable (build it first)" >&2; exit 1; }

# True (0) for a library the GPU machine provides itself.
excluded() {
  local name=$1 path=$2
  case $name in
    linux-vdso.so.* | linux-gate.so.* | ld-linux*.so.* | libc.so.* | libm.so.* | libmvec.so.* | \
    libpthread.so.* | libdl.so.* | librt.so.* | libresolv.so.* | libutil.so.* | libnsl.so.* | \
    libanl.so.* | libBrokenLocale.so.* | libc_malloc_debug.so.* | libthread_db.so.* | libnss_*.so.* | \
    libgcc_s.so.* | libstdc++.so.*)
      return 0 ;;
    libcuda.so.* | libcudart.so.* | libcublas.so.* | libcublasLt.so.* | libcudnn*.so.* | libnvrtc*.so.* | \
    libnvJitLink.so.* | libnccl.so.* | libcufft*.so.* | libcurand.so.* | libcusolver*.so.* | \
    libcusparse.so.* | libnvblas.so.* | libcupti.so.* | libnvToolsExt.so.* | libnvidia-*.so.*)
      return 0 ;;
  esac
  case $(readlink -f "$path") in
    /usr/local/cuda*/*) return 0 ;;
  esac
  return 1
}

ldd_out=$(ldd "$binary")
if grep -q 'not found' <<<"$ldd_out"; then
  echo "gpu_bundle: unresolved libraries here:" >&2
  grep 'not found' <<<"$ldd_out" >&2
  exit 1
fi

# OpenBLAS is loaded at run time (kernels/cpu/openblas.h), so ldd does not list it: add it,
# and what it needs, from this machine's linker cache.
openblas=$(ldconfig -p | awk '$1 == "libopenblas.so.0" && /x86-64/ && !found { print $NF; found = 1 }')
if [[ -n $openblas ]]; then
  ldd_out+=$'\n'"	libopenblas.so.0 => $openblas (0x0)"$'\n'"$(ldd "$openblas")"
else
  echo "gpu_bundle: no libopenblas.so.0 here: the bundle's CPU GEMMs will use the builtin loop" >&2
fi

stage=$(mktemp -d /tmp/voxmamba-bundle.XXXXXX)
trap 'rm -rf -- "$stage"' EXIT
mkdir -p "$stage/lib"
packed=() skipped=()
while read -r name arrow path _; do
  [[ $arrow == "=>" && $path == /* ]] || continue  # the vdso and ld-linux lines have no "=> /path"
  [[ -e $stage/lib/$name || " ${skipped[*]} " == *" $name "* ]] && continue  # listed twice
  if excluded "$name" "$path"; then
    skipped+=("$name")
  else
    cp -L "$path" "$stage/lib/$name"  # under its soname, links resolved (e.g. OpenBLAS alternatives)
    packed+=("$name")
  fi
done <<<"$ldd_out"

mkdir -p "$bundle"
rm -f "$bundle/voxmamba" "$bundle/libs.tar.xz" "$bundle/libs.txt" "$bundle/build_info.txt"
cp "$binary" "$bundle/voxmamba"
(cd "$stage/lib" && ls -1) >"$bundle/libs.txt"
tar -C "$stage/lib" -cf - . | xz -T2 -6 >"$bundle/libs.tar.xz"

# What the binary needs at most from the GPU machine's glibc and libstdc++ (Ubuntu 24.04 has
# GLIBC 2.39, GLIBCXX 3.4.33, CXXABI 1.3.15).
needs=$(objdump -T "$binary" "$stage"/lib/* 2>/dev/null | grep -oE '\b(GLIBC|GLIBCXX|CXXABI)_[0-9.]+\b' | sort -u)
max_version() { grep "^$1_" <<<"$needs" | sed "s/^$1_//" | sort -V | tail -1; }

# Build facts that decide whether the binary runs (and runs fast) on the H100 machine.
build_dir=$(cd "$(dirname "$binary")/.." && pwd)
cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$build_dir/CMakeCache.txt" 2>/dev/null | head -1; }
cuda_archs=$(cache_value CMAKE_CUDA_ARCHITECTURES)
native=$(cache_value VOXMAMBA_NATIVE)
cxx_flags="$(cache_value CMAKE_CXX_FLAGS) $(cache_value CMAKE_CXX_FLAGS_RELEASE)"
# GPU code actually embedded: the fatbin's entries (kind, sm) — no cuobjdump needed.
fatbin=$(mktemp /tmp/voxmamba-fatbin.XXXXXX)
objcopy -O binary --only-section=.nv_fatbin "$binary" "$fatbin" 2>/dev/null || : >"$fatbin"
gpu_code=$(python3 - "$fatbin" <<'EOF'
import struct, sys
d = open(sys.argv[1], "rb").read()
found, i = set(), 0
while i + 16 <= len(d):
    magic, _, header, size = struct.unpack_from("<IHHQ", d, i)
    if magic != 0xBA55ED50:
        i += 8
        continue
    j, end = i + header, i + header + size
    while j + 32 <= end:
        kind, _, entry_header, padded = struct.unpack_from("<HHII", d, j)
        sm = struct.unpack_from("<I", d, j + 28)[0]
        found.add({1: "compute_", 2: "sm_"}.get(kind, "kind%d_" % kind) + str(sm))
        if entry_header == 0:
            break
        j += entry_header + padded
    i = end
print(" ".join(sorted(found)) or "none")
EOF
)
rm -f -- "$fatbin"
zmm=$(objdump -d --no-show-raw-insn "$binary" | grep -c '%zmm' || true)
{
  echo "binary: $binary ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty'))"
  echo "build_host_cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "build_host_isa: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx|avx2|fma|bmi2|f16c|avx512.*|avx_vnni|amx.*|vaes|vpclmulqdq|gfni|sha_ni)$' | sort | tr '\n' ' ')"
  echo "cmake: CMAKE_CUDA_ARCHITECTURES=$cuda_archs VOXMAMBA_NATIVE=$native CXX_FLAGS=$cxx_flags"
  echo "gpu_code: $gpu_code"
  echo "avx512_instructions: $zmm"
  echo "needs: GLIBC $(max_version GLIBC), GLIBCXX $(max_version GLIBCXX), CXXABI $(max_version CXXABI)"
} >"$bundle/build_info.txt"

echo "packed ${#packed[@]} libraries; left to the GPU machine: ${skipped[*]}"
cat "$bundle/build_info.txt"
warn=0
if [[ " $gpu_code " != *" sm_90 "* ]]; then
  echo "WARNING: no sm_90 SASS in the binary (has: $gpu_code); the H100 would JIT-compile PTX at start" \
       "(slow first run, timings not representative). Rebuild with -DCMAKE_CUDA_ARCHITECTURES=90." >&2
  warn=1
fi
if [[ $native == ON || $zmm -gt 0 ]]; then
  echo "WARNING: built with -march=native (VOXMAMBA_NATIVE=$native, $zmm AVX-512 instructions) on this" \
       "CPU; the GPU machine's CPU may lack some of these (SIGILL). Safer: -DVOXMAMBA_NATIVE=OFF" \
       "-DCMAKE_CXX_FLAGS=-march=x86-64-v3 (AVX2 + FMA)." >&2
  warn=1
fi
echo "sizes (bytes):"
du -b "$bundle/voxmamba" "$bundle/libs.tar.xz"
echo "uncompressed libraries: $(du -sb "$stage/lib" | cut -f1) bytes"
total=$(du -cb "$bundle"/* | tail -1 | cut -f1)
echo "bundle total: $total bytes ($(awk -v b="$total" 'BEGIN { printf "%.1f", b / 1048576 }') MiB)"
if ((total > 60 * 1048576)); then
  echo "gpu_bundle: the bundle is over 60 MiB" >&2
  exit 1
fi
((warn == 0)) || echo "(bundle written, but read the warnings above)" >&2
