#include "io/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace voxmamba::io {

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  const std::string temporary = path + ".partial-" + std::to_string(::getpid());
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
