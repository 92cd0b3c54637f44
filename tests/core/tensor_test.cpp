#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "core/bfloat16.h"
#include "core/device.h"
#include "core/float16.h"

namespace voxmamba {
namespace {

TEST(Tensor, EmptyHasShapeDtypeAndAlignedStorage) {
  Tensor t = Tensor::empty({2, 3, 4, 5, 6});
  EXPECT_EQ(t.numel(), 720);
  EXPECT_EQ(t.bytes(), 720u * 4u);
  EXPECT_EQ(t.dim(-1), 6);
  EXPECT_EQ(t.rank(), 5);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.raw_data()) % 64, 0u);
}

TEST(BFloat16, RoundsToNearestEvenAndKeepsSpecialValues) {
  // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1).
  EXPECT_EQ(to_float(to_bfloat16(1.0f + 0x1p-8f)), 1.0f);
  // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): up.
  EXPECT_EQ(to_float(to_bfloat16(1.0f + 3 * 0x1p-8f)), 1.0f + 0x1p-6f);
  EXPECT_EQ(to_float(to_bfloat16(1.0f + 0x1p-8f + 0x1p-20f)), 1.0f + 0x1p-7f);  // above the tie: up
  EXPECT_EQ(to_float(to_bfloat16(-2.5f)), -2.5f);                                 // exact values stay
  EXPECT_TRUE(std::isnan(to_float(to_bfloat16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(to_float(to_bfloat16(std::numeric_limits<float>::infinity())), std::numeric_limits<float>::infinity());
  // The largest float rounds past bfloat16's largest finite value, to infinity, as on the GPU.
  EXPECT_EQ(to_float(to_bfloat16(std::numeric_limits<float>::max())), std::numeric_limits<float>::infinity());
  Tensor t = Tensor::empty({3}, DType::bf16);
  EXPECT_EQ(t.bytes(), 6u);
  EXPECT_THROW(t.data<float>(), Error);
}

TEST(Float16, RoundsToNearestEvenWithSubnormalsAndOverflow) {
  // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties go to the even fraction (1).
  EXPECT_EQ(to_float16(1.0f + 0x1p-11f).bits, 0x3c00);
  EXPECT_EQ(to_float16(1.0f + 3 * 0x1p-11f).bits, 0x3c02);                  // tie between odd and even: up
  EXPECT_EQ(to_float16(1.0f + 0x1p-11f + 0x1p-20f).bits, 0x3c01);           // above the tie: up
  EXPECT_EQ(to_float16(-2.5f).bits, 0xc100);                                 // exact values stay
  EXPECT_EQ(to_float16(65504.0f).bits, 0x7bff);                              // the largest finite half
  EXPECT_EQ(to_float16(65519.99f).bits, 0x7bff);                             // below the tie with 2^16: down
  EXPECT_EQ(to_float16(65520.0f).bits, 0x7c00);                              // the tie rounds to infinity
  EXPECT_EQ(to_float16(0x1p-24f).bits, 0x0001);                              // the smallest subnormal
  EXPECT_EQ(to_float16(0x1p-25f).bits, 0x0000);                              // its half: tie to even zero
  EXPECT_EQ(to_float16(0x1.8p-24f).bits, 0x0002);                            // 1.5 ulp: tie to even 2
  EXPECT_EQ(to_float16(0x1p-14f - 0x1p-25f).bits, 0x0400);                   // rounds up into the normals
  EXPECT_EQ(to_float16(-0.0f).bits, 0x8000);
  EXPECT_EQ(to_float(Float16{0x0001}), 0x1p-24f);
  EXPECT_EQ(to_float(Float16{0x03ff}), 0x1p-14f - 0x1p-24f);
  EXPECT_EQ(to_float(Float16{0xfbff}), -65504.0f);
  EXPECT_TRUE(std::isnan(to_float(to_float16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(to_float(to_float16(std::numeric_limits<float>::infinity())), std::numeric_limits<float>::infinity());
  EXPECT_EQ(to_float(to_float16(-1e30f)), -std::numeric_limits<float>::infinity());
  Tensor t = Tensor::empty({3}, DType::f16);
  EXPECT_EQ(t.bytes(), 6u);
  EXPECT_THROW(t.data<BFloat16>(), Error);
}

TEST(Float16, EveryHalfRoundTripsAndFloatsRoundLikeTheCompiler) {
  for (std::uint32_t bits = 0; bits < 0x10000u; ++bits) {
    const Float16 h{static_cast<std::uint16_t>(bits)};
    const float f = to_float(h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(to_float16(f).bits, h.bits) << "half 0x" << std::hex << bits;
  }
#ifdef __FLT16_MAX__
  // Where the compiler has a native half, its conversion is an independent oracle: floats
  // of every exponent, with random fractions and each tie pattern.
  std::uint32_t state = 12345;
  for (int i = 0; i < 2000000; ++i) {
    state = state * 1664525u + 1013904223u;
    std::uint32_t word = state;
    if (i % 4 == 0) word &= 0xffffe000u | 0x00001000u;  // exact ties of the 13 dropped bits
    float f;
    std::memcpy(&f, &word, sizeof f);
    if (std::isnan(f)) continue;
    const auto native = static_cast<_Float16>(f);
    std::uint16_t expected;
    std::memcpy(&expected, &native, sizeof expected);
    ASSERT_EQ(to_float16(f).bits, expected) << "float " << f;
    ASSERT_EQ(to_float(Float16{expected}), static_cast<float>(native));
  }
#endif
}

TEST(Tensor, CountsNonFiniteElements) {
  Tensor t = Tensor::full({2, 5}, 1.5f);
  EXPECT_EQ(count_non_finite(t), 0);
  t.data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
  t.data<float>()[4] = std::numeric_limits<float>::infinity();
  t.data<float>()[9] = -std::numeric_limits<float>::infinity();
  t.data<float>()[5] = std::numeric_limits<float>::max();  // large but finite
  EXPECT_EQ(count_non_finite(t), 3);
  EXPECT_THROW(count_non_finite(Tensor::zeros({3}, DType::i32)), Error);
}

TEST(Tensor, CountsNonFiniteElementsAcrossParallelRanges) {
  // Over 2^20 values the count is made in ranges on several threads: non-finite values at both
  // ends, at a range's likely edges and beside them, and the subnormal, negative-zero and
  // largest floats that share no exponent pattern with them, are each counted once or not at all.
  const std::int64_t count = (std::int64_t(1) << 22) + 37;
  Tensor t = Tensor::full({count}, -2.25f);
  float* data = t.data<float>();
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::int64_t bad[] = {0, (1 << 20) - 1, 1 << 20, (1 << 21) + 5, count - 1};
  for (const std::int64_t i : bad) data[i] = (i % 2) ? nan : -inf;
  data[7] = std::numeric_limits<float>::denorm_min();
  data[(1 << 20) + 1] = -0.0f;
  data[count - 2] = -std::numeric_limits<float>::max();
  EXPECT_EQ(count_non_finite(t), 5);
  data[count / 2] = std::numeric_limits<float>::signaling_NaN();
  EXPECT_EQ(count_non_finite(t), 6);
}

TEST(Tensor, ZerosAndFull) {
  Tensor z = Tensor::zeros({3, 7}, DType::i32);
  for (int i = 0; i < 21; ++i) EXPECT_EQ(z.data<std::int32_t>()[i], 0);
  Tensor f = Tensor::full({4}, 2.5f);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(f.data<float>()[i], 2.5f);
}

TEST(Tensor, ReshapeSharesStorageCloneDoesNot) {
  Tensor t = Tensor::full({2, 6}, 1.0f);
  Tensor view = t.reshape({3, 4});
  Tensor copy = t.clone();
  view.data<float>()[5] = 9.0f;
  EXPECT_EQ(t.data<float>()[5], 9.0f);
  EXPECT_EQ(copy.data<float>()[5], 1.0f);
  EXPECT_THROW(t.reshape({5}), Error);
}

TEST(Tensor, CopyFromOverwritesInPlaceAndRefusesAnotherShapeOrType) {
  Tensor t = Tensor::full({2, 3}, 1.0f);
  const float* storage = t.data<float>();
  t.copy_from(Tensor::full({2, 3}, 4.0f));
  EXPECT_EQ(t.data<float>(), storage);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t.data<float>()[i], 4.0f);
  EXPECT_THROW(t.copy_from(Tensor::full({3, 2}, 0.0f)), Error);
  EXPECT_THROW(t.copy_from(Tensor::zeros({2, 3}, DType::i32)), Error);
}

TEST(Tensor, WrongDtypeAccessAndBadAxisThrow) {
  Tensor t = Tensor::empty({2});
  EXPECT_THROW(t.data<std::int32_t>(), Error);
  EXPECT_THROW(t.dim(3), Error);
  EXPECT_THROW(Tensor().data<float>(), Error);
}

TEST(Device, ParsesNamesAndRejectsOthers) {
  EXPECT_EQ(parse_device("cpu"), Device::cpu());
  EXPECT_EQ(parse_device("cuda"), Device::cuda(0));
  EXPECT_EQ(parse_device("cuda:1"), Device::cuda(1));
  EXPECT_THROW(parse_device("gpu"), Error);
  EXPECT_THROW(parse_device("cuda:x"), Error);
  EXPECT_EQ(Device::cuda(2).name(), "cuda:2");
}

}  // namespace
}  // namespace voxmamba
