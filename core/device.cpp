#include "core/device.h"

#include "core/dtype.h"
#include "core/error.h"

namespace voxmamba {

std::string Device::name() const {
  return type == DeviceType::CPU ? "cpu" : "cuda:" + std::to_string(index);
}

Device parse_device(const std::string& text) {
  if (text == "cpu") return Device::cpu();
  if (text == "cuda") return Device::cuda(0);
  if (text.rfind("cuda:", 0) == 0 && text.size() > 5 &&
      text.find_first_not_of("0123456789", 5) == std::string::npos) {
    return Device::cuda(std::stoi(text.substr(5)));
  }
  throw Error("unknown device '" + text + "' (expected cpu, cuda or cuda:N)");
}

const char* dtype_name(DType type) {
  switch (type) {
    case DType::f32: return "float32";
    case DType::bf16: return "bfloat16";
    case DType::f16: return "float16";
    case DType::i32: return "int32";
    case DType::u8: return "uint8";
  }
  return "unknown";
}

}  // namespace voxmamba
