#include "core/tensor.h"

#include <gtest/gtest.h>

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
