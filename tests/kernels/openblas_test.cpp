// OpenBLAS's kernels chosen from the CPU's features, and OpenBLAS loaded at run time running
// them: what the process asked for through OPENBLAS_CORETYPE is what OpenBLAS reports, and the
// GEMM it serves matches a plain triple loop.
#include "kernels/cpu/openblas.h"

#include <gtest/gtest.h>
#include <strings.h>

#include <cstdlib>
#include <random>
#include <vector>

#include "kernels/cpu/gemm.h"

namespace voxmamba::kernels::cpu {
namespace {

CpuFeatures avx512_cpu() {
  CpuFeatures cpu;
  cpu.avx2 = cpu.fma = cpu.avx512f = cpu.avx512bw = cpu.avx512vl = cpu.avx512dq = true;
  return cpu;
}

TEST(OpenBlasKernels, AreChosenByVendorAndInstructionSets) {
  CpuFeatures intel = avx512_cpu();
  intel.intel = true;
  EXPECT_EQ(openblas_core_for(intel), "SkylakeX");
  CpuFeatures amd = avx512_cpu();
  amd.amd = true;
  EXPECT_EQ(openblas_core_for(amd), "Haswell") << "AMD keeps the kernels design.md sets there";
  CpuFeatures partial = intel;
  partial.avx512bw = false;  // Xeon Phi's AVX-512 has F but not BW, VL, DQ
  EXPECT_EQ(openblas_core_for(partial), "Haswell");
  CpuFeatures no_fma = intel;
  no_fma.fma = false;
  no_fma.avx512f = false;
  EXPECT_EQ(openblas_core_for(no_fma), "") << "AVX2 without FMA: OpenBLAS's own choice";
  CpuFeatures other = avx512_cpu();  // neither vendor (another x86-64 maker): left to OpenBLAS
  EXPECT_EQ(openblas_core_for(other), "");
}

TEST(OpenBlasKernels, TheLoadedLibraryRunsTheKernelsAskedFor) {
  const OpenBlas* blas = openblas();
  if (blas == nullptr) GTEST_SKIP() << "libopenblas.so.0 is not installed (apt-get install libopenblas0)";
  const char* asked = std::getenv("OPENBLAS_CORETYPE");
  // Set before main by the engine, or by the user (the test's environment), never left unset
  // where the CPU has a choice to make.
  const std::string expected = openblas_core_for(this_cpu_features());
  if (!expected.empty()) {
    ASSERT_NE(asked, nullptr);
  }
  if (asked != nullptr && *asked != '\0') {
    EXPECT_EQ(strcasecmp(blas->core.c_str(), asked), 0) << "asked for " << asked << ", runs " << blas->core;
  }
  EXPECT_EQ(gemm_backend_name(), "openblas " + blas->core);
}

TEST(OpenBlasKernels, GemmMatchesATripleLoopAndAccumulates) {
  const int M = 37, N = 29, K = 53, lda = K + 3, ldb = N + 1, ldc = N + 5;
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> value(-1, 1);
  std::vector<float> A(M * lda), B(K * ldb), C(M * ldc, 0.5f);
  for (float& a : A) a = value(rng);
  for (float& b : B) b = value(rng);
  std::vector<double> expected(M * N);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double sum = 0;
      for (int k = 0; k < K; ++k) sum += double(A[m * lda + k]) * B[k * ldb + n];
      expected[m * N + n] = sum;
    }
  gemm(A.data(), B.data(), C.data(), M, N, K, lda, ldb, ldc, false);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) ASSERT_NEAR(C[m * ldc + n], expected[m * N + n], 1e-4) << m << ", " << n;
  gemm(A.data(), B.data(), C.data(), M, N, K, lda, ldb, ldc, true);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) ASSERT_NEAR(C[m * ldc + n], 2 * expected[m * N + n], 2e-4) << m << ", " << n;
  // The padding between rows is never written.
  for (int m = 0; m < M; ++m) EXPECT_EQ(C[m * ldc + N], 0.5f);
}

}  // namespace
}  // namespace voxmamba::kernels::cpu
