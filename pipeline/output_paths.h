#pragma once
// Checks every command makes before it writes (design.md: nothing lost): the output is not
// one of the inputs, and its folder exists and is writable — before any work is done.
#include <string>

namespace voxmamba::pipeline {

// True when `a` and `b` name the same file: same spelling, the same existing file (links
// included), or the same location once "." / ".." / symlinks are resolved.
bool same_file(const std::string& a, const std::string& b);

// Throws Error naming `output_file` when its folder is missing, not a folder, or not writable.
void require_writable_folder(const std::string& output_file);

}  // namespace voxmamba::pipeline
