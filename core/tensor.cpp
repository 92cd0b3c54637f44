#include "core/tensor.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <sstream>

#include "core/thread_pool.h"

namespace voxmamba {

std::int64_t shape_numel(const Shape& shape) {
  std::int64_t count = 1;
  for (std::int64_t size : shape) count *= size;
  return count;
}

std::string shape_string(const Shape& shape) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (std::int64_t size : shape) {
    if (size < 0) throw Error("negative size in tensor shape " + shape_string(shape));
  }
  Tensor tensor;
  tensor.shape_ = shape;
  tensor.dtype_ = dtype;
  tensor.device_ = device;
  tensor.storage_ = std::make_shared<Storage>(tensor.bytes(), device);
  return tensor;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  if (!device.is_cpu()) return zeros(shape, dtype).to(device);
  Tensor tensor = empty(shape, dtype, device);
  std::memset(tensor.raw_data(), 0, tensor.bytes());
  return tensor;
}

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor tensor = empty(shape);
  float* out = tensor.data<float>();
  std::fill(out, out + tensor.numel(), value);
  return tensor;
}

std::int64_t Tensor::dim(int axis) const {
  const int r = rank();
  const int resolved = axis < 0 ? axis + r : axis;
  if (resolved < 0 || resolved >= r) {
    throw Error("axis " + std::to_string(axis) + " out of range for shape " + shape_string(shape_));
  }
  return shape_[resolved];
}

Tensor Tensor::reshape(const Shape& shape) const {
  if (shape_numel(shape) != numel()) {
    throw Error("cannot reshape " + shape_string(shape_) + " to " + shape_string(shape));
  }
  Tensor view = *this;
  view.shape_ = shape;
  return view;
}

Tensor Tensor::clone() const { return to(device_); }

Tensor Tensor::to(Device device) const {
  Tensor copy = empty(shape_, dtype_, device);
  copy.copy_from(*this);
  return copy;
}

void Tensor::copy_from(const Tensor& source) {
  if (source.shape_ != shape_ || source.dtype_ != dtype_) {
    throw Error("cannot copy a " + std::string(dtype_name(source.dtype_)) + " tensor " +
                shape_string(source.shape_) + " into a " + dtype_name(dtype_) + " tensor " +
                shape_string(shape_));
  }
  if (bytes() == 0) return;
  // The non-CPU side knows how to copy; for CPU to CPU either does.
  DeviceAllocator& allocator = device_allocator(device_.is_cpu() ? source.device_.type : device_.type);
  allocator.copy(raw_data(), device_, source.raw_data(), source.device_, bytes());
}

std::int64_t count_non_finite(const Tensor& t) {
  const float* data = t.data<float>();
  const std::int64_t count = t.numel();
  // NaN and infinity are the floats whose exponent bits are all ones. Tested on the bits, with
  // the count hoisted out of the loop, the scan vectorises: loading base's 60 million weights
  // checks every one, and every volume read is checked. Ranges of at least 2^20 values (4 MiB)
  // a thread, so that small tensors stay on the caller's.
  constexpr std::uint32_t kExponent = 0x7f800000u;
  std::atomic<std::int64_t> bad{0};
  parallel_for(count, std::int64_t(1) << 20, [&](std::int64_t begin, std::int64_t end) {
    std::int64_t bad_here = 0;
    for (std::int64_t i = begin; i < end; ++i) {
      std::uint32_t bits;
      std::memcpy(&bits, data + i, sizeof bits);
      bad_here += (bits & kExponent) == kExponent;
    }
    bad += bad_here;
  });
  return bad.load();
}

void Tensor::check_access(DType requested) const {
  if (!defined()) throw Error("access to an undefined tensor");
  if (requested != dtype_) {
    throw Error(std::string("tensor holds ") + dtype_name(dtype_) + ", accessed as " + dtype_name(requested));
  }
}

}  // namespace voxmamba
