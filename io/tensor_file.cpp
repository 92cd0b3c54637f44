#include "io/tensor_file.h"

#include <hdf5.h>
#include <sys/stat.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "io/atomic_file.h"

namespace voxmamba::io {
namespace {

// Owns one HDF5 identifier and closes it with the matching H5?close.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// HDF5 prints its own error stack to stderr by default; we report one line instead.
void silence_hdf5_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

struct VisitState {
  const std::string* path;
  std::map<std::string, Tensor>* tensors;
  std::string error;
};

Tensor read_dataset(hid_t file, const std::string& name, const std::string& path) {
  Handle dataset(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!dataset.valid()) throw Error(path, "cannot open tensor '" + name + "' (file truncated or corrupt?)");
  Handle type(H5Dget_type(dataset.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_FLOAT || H5Tget_size(type.get()) != 4) {
    throw Error(path, "tensor '" + name + "' is not float32");
  }
  Handle space(H5Dget_space(dataset.get()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) throw Error(path, "tensor '" + name + "' has an unreadable shape");
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  Shape shape(dims.begin(), dims.end());
  Tensor tensor = Tensor::empty(shape);
  if (tensor.numel() > 0 &&
      H5Dread(dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, tensor.raw_data()) < 0) {
    throw Error(path, "cannot read tensor '" + name + "' (file truncated or corrupt?)");
  }
  return tensor;
}

// Link visitor (H5Lvisit exists with the same spelling in HDF5 1.10 and 1.12+).
herr_t collect_dataset(hid_t file, const char* name, const H5L_info_t*, void* data) {
  auto* state = static_cast<VisitState*>(data);
  {
    Handle object(H5Oopen(file, name, H5P_DEFAULT), H5Oclose);
    if (!object.valid()) {
      state->error = *state->path + ": cannot open object '" + name + "' (file truncated or corrupt?)";
      return -1;
    }
    if (H5Iget_type(object.get()) != H5I_DATASET) return 0;
  }
  try {
    state->tensors->emplace(name, read_dataset(file, name, *state->path));
  } catch (const std::exception& error) {
    state->error = error.what();
    return -1;
  }
  return 0;
}

std::string read_config_attribute(hid_t file, const std::string& path) {
  if (H5Aexists(file, "config") <= 0) throw Error(path, "has no 'config' attribute (not a VoxMamba model?)");
  Handle attribute(H5Aopen(file, "config", H5P_DEFAULT), H5Aclose);
  Handle type(H5Aget_type(attribute.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING) throw Error(path, "attribute 'config' is not a string");
  // Both string kinds occur: we write fixed-length, h5py writes variable-length.
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle memory_type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(memory_type.get(), H5T_VARIABLE);
    H5Tset_cset(memory_type.get(), H5Tget_cset(type.get()));  // h5py writes UTF-8; HDF5 won't convert ASCII<->UTF-8
    char* text = nullptr;
    if (H5Aread(attribute.get(), memory_type.get(), &text) < 0 || text == nullptr) {
      throw Error(path, "cannot read attribute 'config'");
    }
    std::string config(text);
    H5free_memory(text);
    return config;
  }
  const std::size_t size = H5Tget_size(type.get());
  std::string config(size, '\0');
  if (H5Aread(attribute.get(), type.get(), config.data()) < 0) throw Error(path, "cannot read attribute 'config'");
  config.resize(config.find('\0') == std::string::npos ? size : config.find('\0'));
  return config;
}

// Creates the groups above `name` ("a/b/c" needs "a" and "a/b").
void create_parent_groups(hid_t file, const std::string& name) {
  for (std::size_t slash = name.find('/'); slash != std::string::npos; slash = name.find('/', slash + 1)) {
    const std::string group = name.substr(0, slash);
    if (H5Lexists(file, group.c_str(), H5P_DEFAULT) > 0) continue;
    Handle created(H5Gcreate2(file, group.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    if (!created.valid()) throw Error("cannot create group '" + group + "'");
  }
}

// Writes `temporary`; errors name `path`, the file the caller asked for.
void write_file(const std::string& temporary, const std::string& path, const TensorFile& file) {
  Handle handle(H5Fcreate(temporary.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (!handle.valid()) throw Error(path, "cannot create file (folder missing or not writable?)");
  {
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.get(), std::max<std::size_t>(1, file.config_json.size()));
    H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
    Handle attribute(H5Acreate2(handle.get(), "config", type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                     H5Aclose);
    std::string text = file.config_json.empty() ? std::string(1, '\0') : file.config_json;
    if (!attribute.valid() || H5Awrite(attribute.get(), type.get(), text.data()) < 0) {
      throw Error(path, "cannot write attribute 'config'");
    }
  }
  for (const auto& [name, tensor] : file.tensors) {
    if (tensor.dtype() != DType::f32 || !tensor.device().is_cpu()) {
      throw Error(path, "tensor '" + name + "' must be float32 on the CPU to be saved");
    }
    create_parent_groups(handle.get(), name);
    std::vector<hsize_t> dims(tensor.shape().begin(), tensor.shape().end());
    Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
    Handle dataset(H5Dcreate2(handle.get(), name.c_str(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT),
                   H5Dclose);
    if (!dataset.valid() ||
        H5Dwrite(dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, tensor.raw_data()) < 0) {
      throw Error(path, "cannot write tensor '" + name + "' (disk full?)");
    }
  }
  if (H5Fflush(handle.get(), H5F_SCOPE_GLOBAL) < 0) throw Error(path, "cannot flush file (disk full?)");
}

}  // namespace

TensorFile read_tensor_file(const std::string& path) {
  silence_hdf5_errors();
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) throw Error(path, "no such file");
  if (S_ISDIR(info.st_mode)) throw Error(path, "is a folder, expected an HDF5 model file");
  if (H5Fis_hdf5(path.c_str()) <= 0) throw Error(path, "not an HDF5 file");
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) throw Error(path, "cannot open HDF5 file (truncated or corrupt)");
  TensorFile result;
  result.config_json = read_config_attribute(file.get(), path);
  VisitState state{&path, &result.tensors, {}};
  if (H5Lvisit(file.get(), H5_INDEX_NAME, H5_ITER_NATIVE, collect_dataset, &state) < 0) {
    throw Error(state.error.empty() ? path + ": cannot list the tensors (file truncated or corrupt)" : state.error);
  }
  return result;
}

void write_tensor_file(const std::string& path, const TensorFile& file) {
  silence_hdf5_errors();
  write_atomically(path, [&](const std::string& temporary) { write_file(temporary, path, file); });
}

}  // namespace voxmamba::io
