// SHA-256 (FIPS 180-4) for the checksum that ends every .onebit file.
//
// Portable C++ (no intrinsics, any endianness and alignment), so the engine
// needs no crypto library on any target.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace onebit {

// The SHA-256 digest of the n bytes at data (data may be null when n == 0).
std::array<uint8_t, 32> sha256(const void* data, size_t n);

}  // namespace onebit
