#pragma once
// exp(x) written so that the compiler vectorises a loop of it (std::exp is an
// opaque libm call per element). Cephes' expf: x = n ln2 + r, |r| <= ln2/2, a degree-6
// polynomial for e^r, and 2^n built in the exponent bits. Relative error about 2 ulp;
// inputs below -87 return 0 (e^x underflows there), inputs above 88 are clamped.
#include <cstdint>
#include <cstring>

namespace voxmamba::kernels::cpu {

inline float vector_exp(float x) {
  const float clamped = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = __builtin_floorf(clamped * 1.44269504088896341f + 0.5f);
  float r = clamped - n * 0.693359375f;  // ln2 split in two for exact reduction
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < -87.0f ? 0.0f : p * scale;
}

}  // namespace voxmamba::kernels::cpu
