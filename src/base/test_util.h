// What the unit tests share for comparing numbers (header-only; included by tests, never by the library).
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace keel {

// ‖got − want‖₂ / ‖want‖₂ over every element; infinity when `got` holds a NaN or an infinity.
inline double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); i++) {
    if (!std::isfinite(got[i])) return INFINITY;
    const double d = static_cast<double>(got[i]) - want[i];
    num += d * d;
    den += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

}  // namespace keel
