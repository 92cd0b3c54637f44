#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/bfloat16.h"
#include "core/device.h"

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
