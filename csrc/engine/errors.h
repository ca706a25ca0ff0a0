// Errors the engine reports. Nothing in the engine aborts or prints: the C API
// turns these into return codes and a thread-local message, the Python binding
// into ModelFormatError / ValueError.
#pragma once
#include <stdexcept>
#include <string>

namespace onebit {

// The model file is truncated, corrupted, hostile or inconsistent. Raised only
// while loading (or while planning a batch size, for the memory cap).
struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A call's arguments are wrong (input shape, batch size, buffer size).
struct InputError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Planned memory for a batch would exceed the cap set at load.
struct MemoryCapError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace onebit
