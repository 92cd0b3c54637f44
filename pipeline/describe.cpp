#include "pipeline/describe.h"

#include <fstream>

#include "core/error.h"
#include "pipeline/model_store.h"
#ifdef VOXMAMBA_HAVE_ITK
#include "io/image.h"
#endif

namespace voxmamba::pipeline {
namespace {

nlohmann::json describe_model(const std::string& path) {
  const ModelDescription description = describe_model_file(path);
  nlohmann::json out;
  out["path"] = path;
  out["config"] = nlohmann::json::parse(description.config_json);
  out["modules"] = description.modules;
  out["parameters"] = description.parameters;
  return out;
}

bool has_model_ending(const std::string& path) {
  for (const std::string ending : {".h5", ".hdf5"}) {
    if (path.size() >= ending.size() && path.compare(path.size() - ending.size(), ending.size(), ending) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace

bool is_model_file(const std::string& path) {
  static const char kSignature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  std::ifstream in(path, std::ios::binary);
  char head[8] = {};
  return in.read(head, 8) && std::equal(head, head + 8, kSignature);
}

nlohmann::json describe_path(const std::string& path) {
  // A .h5 name that is not HDF5 is a broken model file, and should be reported as one.
  if (is_model_file(path) || has_model_ending(path)) return describe_model(path);
#ifdef VOXMAMBA_HAVE_ITK
  const io::ImageInfo info = io::describe_image(path);
  nlohmann::json out;  // exactly these keys (issue 3), so scripts can rely on them
  out["size"] = info.geometry.size;
  out["spacing"] = info.geometry.spacing;
  out["origin"] = info.geometry.origin;
  out["direction"] = info.geometry.direction;
  out["pixel_type"] = info.pixel_type;
  out["min"] = info.min;
  out["max"] = info.max;
  if (!info.series.empty()) {
    nlohmann::json series = nlohmann::json::array();
    for (const io::DicomSeries& s : info.series) {
      series.push_back({{"uid", s.uid}, {"description", s.description}, {"slices", s.slices}, {"size", s.size}});
    }
    out["series"] = series;
  }
  return out;
#else
  std::ifstream probe(path);
  if (!probe) throw Error(path, "no such file or folder");
  throw Error(path, "not a model file, and this build reads no image formats (configure with -DVOXMAMBA_ITK=ON)");
#endif
}

}  // namespace voxmamba::pipeline
