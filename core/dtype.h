#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace voxmamba {

enum class DType : std::uint8_t { f32, bf16, f16, i32, u8 };

constexpr std::size_t dtype_size(DType type) {
  switch (type) {
    case DType::f32: return 4;
    case DType::bf16: return 2;
    case DType::f16: return 2;
    case DType::i32: return 4;
    case DType::u8: return 1;
  }
  return 0;
}

const char* dtype_name(DType type);

// Maps a C++ element type to its DType, so that Tensor::data<T>() can check what it hands out.
template <typename T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::f32; };
template <> struct DTypeOf<std::int32_t> { static constexpr DType value = DType::i32; };
template <> struct DTypeOf<std::uint8_t> { static constexpr DType value = DType::u8; };

}  // namespace voxmamba
