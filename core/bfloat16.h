#pragma once
// The host side of bfloat16: the upper half of an IEEE float. Conversions round to nearest,
// ties to even, as CUDA's __float2bfloat16 does, so that host and device agree bit for bit.
#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace voxmamba {

struct BFloat16 {
  std::uint16_t bits = 0;
};

inline BFloat16 to_bfloat16(float value) {
  std::uint32_t word;
  std::memcpy(&word, &value, sizeof word);
  if ((word & 0x7f800000u) == 0x7f800000u && (word & 0x007fffffu) != 0) {
    return {static_cast<std::uint16_t>((word >> 16) | 0x0040u)};  // NaN stays a (quiet) NaN
  }
  const std::uint32_t rounding = 0x7fffu + ((word >> 16) & 1u);
  return {static_cast<std::uint16_t>((word + rounding) >> 16)};
}

inline float to_float(BFloat16 value) {
  const std::uint32_t word = static_cast<std::uint32_t>(value.bits) << 16;
  float result;
  std::memcpy(&result, &word, sizeof result);
  return result;
}

template <> struct DTypeOf<BFloat16> { static constexpr DType value = DType::bf16; };

}  // namespace voxmamba
