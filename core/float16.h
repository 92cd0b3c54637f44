#pragma once
// The host side of IEEE binary16 (CUDA's __half): 1 sign, 5 exponent and 10 fraction bits.
// Conversions round to nearest, ties to even, with gradual underflow and overflow to
// infinity, as CUDA's __float2half_rn does, so that host and device agree bit for bit.
// Software, not _Float16: the project builds with compilers and CPUs that lack it.
#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace voxmamba {

struct Float16 {
  std::uint16_t bits = 0;
};

inline Float16 to_float16(float value) {
  std::uint32_t word;
  std::memcpy(&word, &value, sizeof word);
  const auto sign = static_cast<std::uint16_t>((word >> 16) & 0x8000u);
  const std::uint32_t magnitude = word & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) {  // infinity, or NaN (kept quiet, with its top fraction bits)
    const bool nan = magnitude > 0x7f800000u;
    return {
        static_cast<std::uint16_t>(sign | 0x7c00u | (nan ? 0x0200u | ((magnitude >> 13) & 0x03ffu) : 0u))};
  }
  if (magnitude >= 0x477ff000u) return {static_cast<std::uint16_t>(sign | 0x7c00u)};  // rounds past 65504
  if (magnitude < 0x38800000u) {
    // Below 2^-14: a subnormal half, fraction = value / 2^-24 rounded to nearest even.
    if (magnitude < 0x33000000u) return {sign};  // at most 2^-25: rounds to zero (the tie goes to even 0)
    const std::uint32_t exponent = magnitude >> 23;
    const std::uint32_t mantissa = (magnitude & 0x007fffffu) | 0x00800000u;
    const std::uint32_t shift = 126u - exponent;  // 14..24 for exponents 112..102
    const std::uint32_t kept = mantissa >> shift;
    const std::uint32_t rest = mantissa & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    const std::uint32_t rounded = kept + (rest > half || (rest == half && (kept & 1u)) ? 1u : 0u);
    return {static_cast<std::uint16_t>(sign | rounded)};
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped fraction bits; a carry
  // out of the fraction correctly bumps the exponent.
  const std::uint32_t rebased = magnitude - 0x38000000u;
  const std::uint32_t rounding = 0x0fffu + ((rebased >> 13) & 1u);
  return {static_cast<std::uint16_t>(sign | ((rebased + rounding) >> 13))};
}

inline float to_float(Float16 value) {
  const std::uint32_t sign = static_cast<std::uint32_t>(value.bits & 0x8000u) << 16;
  const std::uint32_t exponent = (value.bits >> 10) & 0x1fu;
  std::uint32_t fraction = value.bits & 0x03ffu;
  std::uint32_t word;
  if (exponent == 0x1fu) {
    word = sign | 0x7f800000u | (fraction << 13);
  } else if (exponent != 0) {
    word = sign | ((exponent + 112u) << 23) | (fraction << 13);
  } else if (fraction == 0) {
    word = sign;
  } else {  // subnormal: normalise the fraction into a float's implicit leading bit
    std::uint32_t e = 113u;
    while ((fraction & 0x0400u) == 0) {
      fraction <<= 1;
      --e;
    }
    word = sign | (e << 23) | ((fraction & 0x03ffu) << 13);
  }
  float result;
  std::memcpy(&result, &word, sizeof result);
  return result;
}

template <>
struct DTypeOf<Float16> {
  static constexpr DType value = DType::f16;
};

}  // namespace voxmamba
