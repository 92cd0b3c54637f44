#include "kernels/cpu/openblas.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace voxmamba::kernels::cpu {

CpuFeatures this_cpu_features() {
  CpuFeatures cpu;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // __builtin_cpu_supports also checks that the OS saves the vector registers (XCR0). The
  // init call makes the answers valid before main (kernels_chosen below runs then).
  __builtin_cpu_init();
  cpu.intel = __builtin_cpu_is("intel");
  cpu.amd = __builtin_cpu_is("amd");
  cpu.avx2 = __builtin_cpu_supports("avx2");
  cpu.fma = __builtin_cpu_supports("fma");
  cpu.avx512f = __builtin_cpu_supports("avx512f");
  cpu.avx512bw = __builtin_cpu_supports("avx512bw");
  cpu.avx512vl = __builtin_cpu_supports("avx512vl");
  cpu.avx512dq = __builtin_cpu_supports("avx512dq");
#endif
  return cpu;
}

std::string openblas_core_for(const CpuFeatures& cpu) {
  if (cpu.intel && cpu.avx512f && cpu.avx512bw && cpu.avx512vl && cpu.avx512dq) return "SkylakeX";
  if ((cpu.intel || cpu.amd) && cpu.avx2 && cpu.fma) return "Haswell";
  return "";
}

namespace {

// OpenBLAS reads OPENBLAS_CORETYPE once, as it loads. The variable is set while the process
// starts, before main: setenv is not safe while other threads may read the environment, and
// OpenBLAS loads at the first GEMM, which may run on any thread.
const bool kernels_chosen = [] {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return false;  // the user's choice stands
  const std::string core = openblas_core_for(this_cpu_features());
  return !core.empty() && setenv("OPENBLAS_CORETYPE", core.c_str(), 0) == 0;
}();

OpenBlas* load_openblas() {
  // Debian's libopenblas0 installs this name (through its alternatives).
  void* library = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
  if (!library) return nullptr;
  const auto sgemm = reinterpret_cast<CblasSgemm>(dlsym(library, "cblas_sgemm"));
  const auto set_threads = reinterpret_cast<void (*)(int)>(dlsym(library, "openblas_set_num_threads"));
  const auto core_name = reinterpret_cast<char* (*)()>(dlsym(library, "openblas_get_corename"));
  if (!sgemm || !set_threads) return nullptr;  // some other library under that name
  // The thread pool splits the rows; OpenBLAS's own threads on top would oversubscribe.
  set_threads(1);
  auto* loaded = new OpenBlas{sgemm, core_name ? core_name() : "unknown"};  // for the process's life
  return loaded;
}

}  // namespace

const OpenBlas* openblas() {
  static OpenBlas* loaded = nullptr;
  static std::once_flag once;
  std::call_once(once, [] { loaded = load_openblas(); });
  return loaded;
}

}  // namespace voxmamba::kernels::cpu
