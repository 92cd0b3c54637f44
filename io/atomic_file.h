#pragma once
// Outputs are written under a temporary name and renamed into place (design.md: nothing lost).
#include <functional>
#include <string>

namespace voxmamba::io {

// Calls write(temporary_path), then renames it to `path`; removes the temporary on failure.
void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write);

}  // namespace voxmamba::io
