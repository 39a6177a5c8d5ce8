#include "model/vocab_parallel.h"

#include <cstring>

namespace keel::model {

void pack_row_maxima(const float* values, const int32_t* ids, int32_t id0, int rows, float* out) {
  for (int r = 0; r < rows; r++) {
    const int32_t id = id0 + ids[r];
    out[2 * r] = values[r];
    std::memcpy(&out[2 * r + 1], &id, sizeof(id));
  }
}

void merge_row_maxima(const float* gathered, int ranks, int rows, int32_t* out) {
  for (int r = 0; r < rows; r++) {
    float best = gathered[2 * r];
    std::memcpy(&out[r], &gathered[2 * r + 1], sizeof(int32_t));
    // Ranks ascend through the vocabulary, so keeping the first of equal values keeps the lowest id.
    for (int k = 1; k < ranks; k++) {
      const float* pair = gathered + (static_cast<size_t>(k) * rows + r) * 2;
      if (pair[0] > best) {
        best = pair[0];
        std::memcpy(&out[r], &pair[1], sizeof(int32_t));
      }
    }
  }
}

}  // namespace keel::model
