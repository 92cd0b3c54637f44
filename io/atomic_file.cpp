#include "io/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace voxmamba::io {

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  // The temporary keeps the file name's ending (ITK picks the format from it), in the same
  // folder so that the rename is atomic.
  const std::string::size_type slash = path.find_last_of('/');
  const std::string folder = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  const std::string temporary = folder + ".partial-" + std::to_string(::getpid()) + "-" + name;
  try {
    write(temporary);
  } catch (...) {
    std::remove(temporary.c_str());
    throw;
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(temporary.c_str());
    throw Error(path, "cannot move the finished file into place: " + reason);
  }
}

}  // namespace voxmamba::io
