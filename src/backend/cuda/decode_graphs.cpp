#include "backend/cuda/decode_graphs.h"

#include "backend/cuda/cuda_check.h"

namespace keel::backend::cuda {

DecodeGraphs::~DecodeGraphs() {
  for (auto& [key, g] : graphs_) cudaGraphExecDestroy(g);
}

bool DecodeGraphs::replay(uint64_t key) {
  auto it = graphs_.find(key);
  if (it == graphs_.end()) return false;
  KEEL_CUDA_CHECK(cudaGraphLaunch(it->second, ctx_.stream));
  return true;
}

void DecodeGraphs::begin_capture() {
  KEEL_CUDA_CHECK(cudaStreamBeginCapture(ctx_.stream, cudaStreamCaptureModeThreadLocal));
  capturing_ = true;
}

Status DecodeGraphs::end_capture(uint64_t key) {
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  KEEL_CUDA_RETURN(cudaStreamEndCapture(ctx_.stream, &graph), "end graph capture");
  cudaGraphExec_t exec = nullptr;
  KEEL_CUDA_RETURN(cudaGraphInstantiate(&exec, graph, 0), "instantiate graph");
  cudaGraphDestroy(graph);
  graphs_[key] = exec;
  return Status();
}

}  // namespace keel::backend::cuda
