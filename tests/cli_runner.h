#pragma once
// Runs the voxmamba binary (VOXMAMBA_CLI_PATH) for end-to-end tests of the commands, and
// checks the one-line error contract: non-zero exit, no crash, one "voxmamba: error:" line.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace voxmamba::testing {

namespace fs = std::filesystem;

struct RunResult {
  int status = -1;  // exit status, or 128 + signal when killed
  std::string output;
};

inline std::string quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// Runs voxmamba with `args` in `folder`, stdout and stderr together.
// `prefix` runs the binary through another command (e.g. setpriv to drop root).
inline RunResult run_cli(const fs::path& folder, const std::vector<std::string>& args, const std::string& prefix = "") {
  std::string command = "cd " + quote(folder.string()) + " && " + prefix + quote(VOXMAMBA_CLI_PATH);
  for (const std::string& arg : args) command += " " + quote(arg);
  command += " 2>&1";
  RunResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) result.output.append(buffer, n);
  const int status = ::pclose(pipe);
  if (WIFEXITED(status)) result.status = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) result.status = 128 + WTERMSIG(status);
  return result;
}

// A failure: non-zero exit, no crash, exactly one line "voxmamba: error: ..." that contains
// every one of `words` (file names and the problem).
inline ::testing::AssertionResult is_one_line_error(const RunResult& result, const std::vector<std::string>& words) {
  auto failure = [&] {
    return ::testing::AssertionFailure() << "exit " << result.status << ", output:\n" << result.output << "\n";
  };
  if (result.status == 0) return failure() << "expected a non-zero exit";
  if (result.status < 0 || result.status >= 128) return failure() << "crashed or was killed";
  for (const char* crash : {"terminate", "Aborted", "Segmentation", "core dumped"}) {
    if (result.output.find(crash) != std::string::npos) return failure() << "output mentions '" << crash << "'";
  }
  std::string line = result.output;
  if (!line.empty() && line.back() == '\n') line.pop_back();
  if (line.empty()) return failure() << "no output";
  if (line.find('\n') != std::string::npos) return failure() << "more than one line of output";
  if (line.rfind("voxmamba: error: ", 0) != 0) return failure() << "does not start with 'voxmamba: error: '";
  for (const std::string& word : words) {
    if (line.find(word) == std::string::npos) return failure() << "does not contain '" << word << "'";
  }
  return ::testing::AssertionSuccess();
}

}  // namespace voxmamba::testing
