#pragma once
// HDF5 files of named float32 tensors plus a JSON `config` root attribute: the model file
// format of network.md. Names are paths ("encoder/stem/weight") stored as nested groups.
// Read and written through the HDF5 C API; only io/ includes HDF5.
#include <map>
#include <string>

#include "core/tensor.h"

namespace voxmamba::io {

struct TensorFile {
  std::string config_json;                // the root attribute `config`
  std::map<std::string, Tensor> tensors;  // every dataset in the file, by path
};

// Throws Error "<path>: <problem>" for a missing file, a file that is not HDF5, a truncated
// or corrupt one, a missing `config` attribute, or a dataset that is not float32.
TensorFile read_tensor_file(const std::string& path);

// Writes to a temporary name beside `path` and renames it, so a crash never leaves a
// half-written model under the real name.
void write_tensor_file(const std::string& path, const TensorFile& file);

}  // namespace voxmamba::io
