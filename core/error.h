#pragma once
// One exception type for the whole engine: what failed, and on which file or tensor.
// The command line turns it into one line and a non-zero exit code.
#include <stdexcept>
#include <string>

namespace voxmamba {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
  // `subject` is the file or tensor the problem is about; it leads the message so that
  // the user reads "model.h5: tensor 'x' is missing" rather than a bare reason.
  Error(const std::string& subject, const std::string& message)
      : std::runtime_error(subject + ": " + message) {}
};

}  // namespace voxmamba

#define VOXMAMBA_CHECK(condition, message)                    \
  do {                                                        \
    if (!(condition)) throw ::voxmamba::Error(message);       \
  } while (false)
