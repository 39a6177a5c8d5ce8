#include "base/units.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace keel {

Result<uint64_t> parse_bytes(std::string_view text) {
  std::string s(text);
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) i++;
  if (i == 0) return invalid_argument("size '{}': expected a number such as 8GB or 512MiB", s);
  char* end = nullptr;
  double number = std::strtod(s.substr(0, i).c_str(), &end);
  std::string unit;
  for (size_t j = i; j < s.size(); j++) {
    if (s[j] == ' ') continue;
    unit += static_cast<char>(std::tolower(static_cast<unsigned char>(s[j])));
  }
  double scale = 1;
  if (unit.empty() || unit == "b") scale = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") scale = 1024.0;
  else if (unit == "m" || unit == "mb" || unit == "mib") scale = 1024.0 * 1024;
  else if (unit == "g" || unit == "gb" || unit == "gib") scale = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tb" || unit == "tib") scale = 1024.0 * 1024 * 1024 * 1024;
  else return invalid_argument("size '{}': unknown unit '{}' (expected B, KB, MB, GB or TB)", s, unit);
  double bytes = number * scale;
  if (!std::isfinite(bytes) || bytes >= 1.8e19) return invalid_argument("size '{}' is too large", s);
  return static_cast<uint64_t>(std::llround(bytes));
}

Result<uint64_t> parse_bytes_or_percent(std::string_view text, uint64_t total) {
  if (!text.empty() && text.back() == '%') {
    std::string number(text.substr(0, text.size() - 1));
    char* end = nullptr;
    double pct = std::strtod(number.c_str(), &end);
    if (number.empty() || *end != '\0' || pct <= 0 || pct > 100)
      return invalid_argument("size '{}': a percentage must be in (0, 100]", text);
    return static_cast<uint64_t>(static_cast<double>(total) * pct / 100.0);
  }
  return parse_bytes(text);
}

std::string format_bytes(uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int u = 0;
  while (value >= 1024 && u < 4) {
    value /= 1024;
    u++;
  }
  if (u == 0) return fmt::format("{} B", bytes);
  return fmt::format("{:.1f} {}", value, units[u]);
}

}  // namespace keel
