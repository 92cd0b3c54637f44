#pragma once
// Owning, contiguous, channels-last tensor. Activations are N D H W C; the last axis is
// always the fastest. A reshape shares storage; nothing else aliases.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/memory.h"

namespace voxmamba {

using Shape = std::vector<std::int64_t>;

std::int64_t shape_numel(const Shape& shape);
std::string shape_string(const Shape& shape);  // "[1, 64, 64, 64, 1]"

class Tensor {
 public:
  Tensor() = default;  // an empty tensor: defined() is false

  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, float value);  // f32 on the CPU

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  // Axis size; negative axes count from the end, as in numpy.
  std::int64_t dim(int axis) const;
  std::int64_t numel() const { return shape_numel(shape_); }
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  template <typename T> T* data() {
    check_access(DTypeOf<T>::value);
    return static_cast<T*>(storage_->data());
  }
  template <typename T> const T* data() const {
    check_access(DTypeOf<T>::value);
    return static_cast<const T*>(storage_->data());
  }
  void* raw_data() const { return defined() ? storage_->data() : nullptr; }

  // Same storage, new shape with the same element count.
  Tensor reshape(const Shape& shape) const;
  Tensor clone() const;
  Tensor to(Device device) const;
  // Overwrites this tensor's elements with `source`'s (same shape and type; any devices).
  void copy_from(const Tensor& source);

 private:
  void check_access(DType requested) const;

  std::shared_ptr<Storage> storage_;
  Shape shape_;
  DType dtype_ = DType::f32;
  Device device_;
};

// How many elements of a float32 tensor on the CPU are NaN or infinite: the one scan behind
// every check that weights, inputs and outputs are finite.
std::int64_t count_non_finite(const Tensor& t);

}  // namespace voxmamba
