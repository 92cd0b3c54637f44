#pragma once
// File and process helpers shared by the io and cli tests: temporary folders, whole-file
// reads and writes, and running shell commands or Debian's python3 (numpy, h5py) as an
// independent reader and writer.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace voxmamba::testing {

namespace fs = std::filesystem;

inline constexpr char kPython[] = "/usr/bin/python3";

// A fresh folder under the test temp dir, removed with everything in it on destruction.
class TempFolder {
 public:
  explicit TempFolder(const std::string& prefix) {
    std::string pattern = (fs::path(::testing::TempDir()) / (prefix + "_XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
    path_ = pattern;
  }
  ~TempFolder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;
  const fs::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Runs a shell command; returns its exit status, or -1 when it did not exit normally.
inline int run_shell(const std::string& command) {
  const int status = std::system(command.c_str());
  if (status == -1 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

inline bool python_has(const std::string& module) {
  return run_shell(std::string(kPython) + " -c 'import " + module + "' > /dev/null 2>&1") == 0;
}

// Writes `script` into `folder` and runs it there with Debian's python3; returns its exit
// status. Its output goes to folder/python.log.
inline int run_python(const fs::path& folder, const std::string& script) {
  const fs::path file = folder / "script.py";
  std::ofstream(file) << "import os\nos.chdir(os.path.dirname(os.path.abspath(__file__)))\n" << script;
  return run_shell(std::string(kPython) + " '" + file.string() + "' > '" + (folder / "python.log").string() +
                   "' 2>&1");
}

inline std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace voxmamba::testing
