// Human sizes on the command line: "8GB", "512MiB", "80%" (of a total the caller supplies).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace keel {

// Parses a byte count: a plain integer, or a number with a unit K/M/G/T (powers of 1024; "KB", "KiB",
// "k" all mean 1024) and optional trailing "B". Case-insensitive.
Result<uint64_t> parse_bytes(std::string_view text);

// Like parse_bytes, but also accepts "N%" of `total`.
Result<uint64_t> parse_bytes_or_percent(std::string_view text, uint64_t total);

// 1536 -> "1.5 KiB"; exact bytes below 1 KiB.
std::string format_bytes(uint64_t bytes);

}  // namespace keel
