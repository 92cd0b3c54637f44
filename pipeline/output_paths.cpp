#include "pipeline/output_paths.h"

#include <unistd.h>

#include <filesystem>

#include "core/error.h"

namespace voxmamba::pipeline {
namespace fs = std::filesystem;

bool same_file(const std::string& a, const std::string& b) {
  if (a == b) return true;
  std::error_code error;
  if (fs::equivalent(a, b, error)) return true;
  const fs::path canonical_a = fs::weakly_canonical(a, error);
  if (error) return false;
  const fs::path canonical_b = fs::weakly_canonical(b, error);
  return !error && canonical_a == canonical_b;
}

void require_writable_folder(const std::string& output_file) {
  fs::path folder = fs::path(output_file).parent_path();
  if (folder.empty()) folder = ".";
  if (!fs::is_directory(folder)) throw Error(output_file, "output folder does not exist (or is not a folder)");
  if (::access(folder.c_str(), W_OK) != 0) throw Error(output_file, "output folder is not writable");
}

}  // namespace voxmamba::pipeline
