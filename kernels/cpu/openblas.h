#pragma once
// OpenBLAS for the CPU path's GEMMs, loaded at run time (dlopen) rather than linked, so that
// its kernels can be chosen before it loads. OpenBLAS picks them when it loads, from the
// CPU's model number, and a model its version does not know gets its oldest x86-64 kernels:
// Debian 12's 0.3.21 runs a Xeon of family 6 model 207 (Emerald Rapids, this project's 2-core
// development machines) on its Prescott (SSE3) kernels, sgemm at 89 GFLOP/s where its
// SkylakeX (AVX-512) kernels reach 453 and the `small` forward at 64^3 takes 1.81 s instead of
// 1.02. OPENBLAS_CORETYPE names the kernels instead; it is set from the CPU's features before
// loading, unless the user set it.
#include <string>

namespace voxmamba::kernels::cpu {

// What decides the kernels: the CPU's vendor and the instruction sets it and the OS enable.
struct CpuFeatures {
  bool intel = false, amd = false;
  bool avx2 = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
};
CpuFeatures this_cpu_features();

// The OPENBLAS_CORETYPE for a CPU, or "" to leave the choice to OpenBLAS:
// - "SkylakeX" on Intel CPUs with AVX-512 (F, BW, VL, DQ): the kernels OpenBLAS itself runs on
//   every Intel AVX-512 model it knows (SkylakeX, Cooperlake and Sapphire Rapids share them
//   for float32);
// - "Haswell" on other CPUs with AVX2 and FMA, AMD's included: its kernels for Zen, and those
//   design.md sets for the AMD EPYC machines, where older OpenBLAS builds misbehave;
// - "" otherwise.
std::string openblas_core_for(const CpuFeatures& cpu);

// cblas_sgemm's signature; CBLAS's enums are C enums, passed as int.
using CblasSgemm = void (*)(int layout, int trans_a, int trans_b, int M, int N, int K, float alpha,
                            const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc);
constexpr int kCblasRowMajor = 101, kCblasNoTrans = 111;  // CBLAS's values (cblas.h)

struct OpenBlas {
  CblasSgemm sgemm = nullptr;
  std::string core;  // the kernels it runs, as OpenBLAS names them ("SkylakeX")
};

// OpenBLAS (libopenblas.so.0), loaded on first use with its own threads off (the thread pool
// splits the work); nullptr when it cannot be loaded. OPENBLAS_CORETYPE is set first, from
// openblas_core_for(this_cpu_features()), when the environment does not set it.
const OpenBlas* openblas();

}  // namespace voxmamba::kernels::cpu
