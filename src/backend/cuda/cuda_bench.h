// The device's own limits, measured in the same run as a benchmark so ratios are honest.
#pragma once

#include "base/status.h"

namespace keel::backend {

// Bytes/s of a streaming 16-byte-vector read over 4 GiB (median of 10).
Result<double> cuda_hbm_read_bandwidth(int device);
// FLOP/s of a bf16 n x n x n cuBLAS GEMM with F32 accumulation on random data (median of 7).
Result<double> cuda_gemm_flops(int device, int n);

}  // namespace keel::backend
