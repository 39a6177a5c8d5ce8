// Vocab-parallel greedy sampling (docs/DISTRIBUTED.md): every tensor-parallel rank holds the logits of its vocab
// slice, takes their argmax on its own device, and the ranks exchange one (value, global id) pair per row
// instead of [rows, vocab] logits. Every rank then picks the same winner: the largest value, the lowest id on
// ties, which is exactly the argmax of the whole row.
#pragma once

#include <cstdint>

namespace keel::model {

// One rank's row maxima as 2 x rows floats for Communicator::all_gather: per row its value, then its global id
// (id0 + ids[r]) stored bitwise (memcpy, no conversion: exact for any id; communicators move bytes untouched).
void pack_row_maxima(const float* values, const int32_t* ids, int32_t id0, int rows, float* out);

// `gathered`: `ranks` blocks of pack_row_maxima's output in rank order, which is vocab order. out[r] = the id
// of row r's largest value over all blocks, the lowest id on ties.
void merge_row_maxima(const float* gathered, int ranks, int rows, int32_t* out);

}  // namespace keel::model
