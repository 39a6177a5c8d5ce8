#!/usr/bin/env bash
# Builds and runs keel on the GPU device machine (see the device tool). The machine has CUDA, cmake, gcc,
# gtest and python with torch, but not every Debian library keel uses: those travel as .deb files in
# .device/debs (git-ignored; `apt-get download` them here) and are unpacked into a private prefix.
#   tools/device.sh build test bench peer
# Logs and results go to $OUT (the device tool brings them back).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/keel-out}
mkdir -p "$OUT"
P=/tmp/keel-prefix
B=/tmp/keel-build
LIBDIR=$P/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$LIBDIR:${LD_LIBRARY_PATH:-}
export PKG_CONFIG_SYSROOT_DIR=$P PKG_CONFIG_PATH=$LIBDIR/pkgconfig:$P/usr/share/pkgconfig

for stage in "$@"; do
  case $stage in
    build)
      for f in .device/debs/*.deb; do dpkg -x "$f" $P; done
      # Debian's CMake configs name absolute /usr paths; point them at the prefix.
      grep -rl '"/usr/' $P/usr/lib/x86_64-linux-gnu/cmake $P/usr/share/cmake 2>/dev/null |
        xargs -r sed -i "s#\"/usr/#\"$P/usr/#g"
      cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEEL_CUDA=on -DKEEL_CUDA_ARCHS=90 \
        -DCMAKE_PREFIX_PATH=$P/usr > "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
      ninja -C $B -j16 ${KEEL_TARGETS:-keel keel_backend_cuda_test} > "$OUT/build.log" 2>&1 || { grep -m20 -A5 "error" "$OUT/build.log"; exit 1; }
      echo "build ok" ;;
    build-ab)
      # The tree as it is and a base snapshot (.device/base: `git archive BASE | tar -x -C .device/base`, carried)
      # built side by side, half the cores each, for an A/B in the same call.
      for f in .device/debs/*.deb; do dpkg -x "$f" $P; done
      grep -rl '"/usr/' $P/usr/lib/x86_64-linux-gnu/cmake $P/usr/share/cmake 2>/dev/null |
        xargs -r sed -i "s#\"/usr/#\"$P/usr/#g"
      # A base older than the vendored cpp-httplib links Debian's (.device/base-debs), from a prefix of its own:
      # the head must not see Debian's httplib.h before third_party's.
      rm -rf $P-base && cp -a $P $P-base
      for f in .device/base-debs/*.deb; do [ -e "$f" ] && dpkg -x "$f" $P-base; done
      grep -rl "\"$P/usr/" $P-base/usr/lib/x86_64-linux-gnu/cmake $P-base/usr/share/cmake 2>/dev/null |
        xargs -r sed -i "s#\"$P/usr/#\"$P-base/usr/#g"
      for side in head base; do
        src=.; dir=$B; prefix=$P; targets=${KEEL_TARGETS:-keel keel_backend_cuda_test}
        [ $side = base ] && { src=.device/base; dir=$B-base; prefix=$P-base; targets=keel; }
        ( cmake -S $src -B $dir -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEEL_CUDA=on -DKEEL_CUDA_ARCHS=90 \
            -DCMAKE_PREFIX_PATH=$prefix/usr > "$OUT/cmake-$side.log" 2>&1 &&
          ninja -C $dir -j8 $targets > "$OUT/build-$side.log" 2>&1 ||
          { echo "$side build failed"; grep -m20 -A5 "error" "$OUT/build-$side.log" "$OUT/cmake-$side.log"; } ) &
      done
      wait
      [ -x $B/keel ] && [ -x $B-base/keel ] || exit 1
      echo "build-ab ok" ;;
    ab)
      # Decode at batch 1/8/64 (ctx 128) and prefill 2,048: base, head, base, head on the same card.
      for rep in 1 2; do
        for side in base head; do
          bin=$B/keel; [ $side = base ] && bin="env LD_LIBRARY_PATH=$P-base/usr/lib/x86_64-linux-gnu:$LD_LIBRARY_PATH $B-base/keel"
          echo "== $side rep $rep" | tee -a "$OUT/ab.txt"
          $bin bench --backend cuda --synthetic llama3-8b --prompt-tokens 128 --decode-tokens 64 --batches 1,8,64 2>&1 |
            tee -a "$OUT/ab.txt" | grep -E "decode|prefill"
        done
      done ;;
    carried)
      # Binaries built on the workstation (build-flash/, named in the call's carry) when they run here, else a
      # build: the libraries first, as in build.
      for f in .device/debs/*.deb; do dpkg -x "$f" $P; done
      mkdir -p $B/src/backend/cuda
      if build-flash/keel --help > /dev/null 2>&1 && build-flash/src/backend/cuda/keel_backend_cuda_test --gtest_list_tests > /dev/null 2>&1; then
        cp build-flash/keel $B/keel && cp build-flash/src/backend/cuda/keel_backend_cuda_test $B/src/backend/cuda/
        echo "carried binaries run"
      else
        echo "carried binaries do not run here: building"; "$0" build || exit 1
      fi ;;
    prefill)
      # Tiled flash prefill (issue 6): every CUDA test (op tests, goldens), the kernel's microbenchmark (variants,
      # and the per-row kernel it replaces on the same problems), then llama3-8b prefill at 512/2048/8192 with it
      # and without (KEEL_FLASH_PREFILL=0), and 8192 in chunks of 2048 (each chunk attends to the KV before it).
      $B/src/backend/cuda/keel_backend_cuda_test 2>&1 | tee "$OUT/cuda_test.log" |
        grep -E "flash prefill|cuda golden|FAILED|PASSED|Failure|tests ran"
      nvcc -O3 -std=c++17 -gencode=arch=compute_90,code=sm_90 -I src -o /tmp/flash_prefill_v2 dev/kernels/flash_prefill_v2.cu &&
        /tmp/flash_prefill_v2 2>&1 | tee "$OUT/flash_dev.txt" | grep -E "FAIL|TFLOP"
      $B/keel bench --backend cuda --synthetic llama3-8b --decode-tokens 8 --batches 1 2>&1 | tee "$OUT/prefill.txt"
      KEEL_FLASH_PREFILL=0 $B/keel bench --backend cuda --synthetic llama3-8b --decode-tokens 8 --batches 1 2>&1 |
        tee -a "$OUT/prefill.txt"
      $B/keel bench --backend cuda --synthetic llama3-8b --prompt-tokens 8192 --prefill-chunk 2048 --decode-tokens 4 \
        --batches 1 2>&1 | tee -a "$OUT/prefill.txt" ;;
    test)
      $B/src/backend/cuda/keel_backend_cuda_test 2>&1 | tee "$OUT/cuda_test.log" | grep -E "cuda golden|FAILED|PASSED|Failure|error" ;;
    ctest)
      (cd $B && ctest -j8 --timeout 600 2>&1 | tail -15) ;;
    bench)
      $B/keel bench --backend cuda --synthetic llama3-8b --prompt-tokens 128 --decode-tokens 64 2>&1 | tee "$OUT/bench.txt" ;;
    bench-more)
      # Prefill at the peer's lengths, then the other named shapes.
      $B/keel bench --backend cuda --synthetic llama3-8b --prompt-tokens 512 --decode-tokens 16 --batches 1 2>&1 | tee -a "$OUT/bench.txt"
      $B/keel bench --backend cuda --synthetic qwen3-8b --prompt-tokens 128 --decode-tokens 32 --batches 1,8,64 2>&1 | tee -a "$OUT/bench.txt"
      $B/keel bench --backend cuda --synthetic qwen3-30b-a3b --prompt-tokens 128 --decode-tokens 16 --batches 1,8 2>&1 | tee -a "$OUT/bench.txt" ;;
    moe)
      # MoE on the GPU (issue 6): the moe op against the CPU oracle, the goldens (MoE among them), batched ==
      # alone, then qwen3-30b-a3b decode (graphs) at batches 1, 8, 64 and a 2048-token prefill (grouped GEMMs).
      $B/src/backend/cuda/keel_backend_cuda_test --gtest_filter='CudaMoe.*:*CudaGolden.*:CudaEngine.*' 2>&1 |
        tee "$OUT/moe_test.log" | grep -E "cuda golden|FAILED|PASSED|Failure|error|OK \]"
      $B/keel bench --backend cuda --synthetic qwen3-30b-a3b --prompt-tokens 64,2048 --decode-tokens 32 --batches 1,8,64 \
        2>&1 | tee "$OUT/moe_bench.txt" ;;
    serve)
      # The demo model served from the GPU: non-streamed and streamed chat, then a clean SIGTERM.
      $B/keel serve --backend cuda --port 8090 > "$OUT/serve.log" 2>&1 &
      pid=$!
      for _ in $(seq 1 300); do curl -sf 127.0.0.1:8090/health >/dev/null && break; sleep 0.1; done
      body='{"model":"demo","messages":[{"role":"user","content":"Tell me a fortune."}],"temperature":0,"max_tokens":40}'
      curl -s 127.0.0.1:8090/v1/chat/completions -H 'content-type: application/json' -d "$body"; echo
      curl -sN 127.0.0.1:8090/v1/chat/completions -H 'content-type: application/json' \
        -d "${body%\}},\"stream\":true}" | tail -3
      curl -s 127.0.0.1:8090/metrics | grep -E "allocations_after_warmup|kv_blocks"
      kill -TERM $pid; wait $pid; echo "serve exit $?"; tail -3 "$OUT/serve.log" ;;
    server-tests)
      # The official-client tests (openai, @anthropic-ai/sdk) against `keel serve --backend cuda`. The machine has no
      # node: .device/node.xz is this machine's /usr/bin/node, .device/server_node_modules.tar.xz the npm clients.
      mkdir -p /tmp/node/bin && xz -dc .device/node.xz > /tmp/node/bin/node && chmod +x /tmp/node/bin/node
      [ -d tests/server/node_modules ] || tar xJf .device/server_node_modules.tar.xz -C tests/server
      PATH=/tmp/node/bin:$PATH KEEL_SERVE_ARGS="--backend cuda --max-num-seqs 8" tests/server/run.sh $B/keel 2>&1 |
        tee "$OUT/server_tests.log" | grep -E "^# (tests|pass|fail)|not ok|exited" ;;
    serve-bench)
      # 64 concurrent streaming clients, 128 in / 1024 out, through the real HTTP server, on the 8B shape.
      # Greedy (the argmax on the device), then sampled at temperature 1 with top-p 0.9 (the device sampler), then
      # the engine's raw decode step at batch 64 and the run's mean context (128 + 512 tokens) for comparison.
      $B/keel bench serve --backend cuda --synthetic llama3-8b --num-prompts ${KEEL_PROMPTS:-128} --concurrency 64 \
        --input-len 128 --output-len 1024 --max-num-seqs 64 --max-num-batched-tokens 2048 2>&1 | tee "$OUT/serve_bench.txt"
      $B/keel bench serve --backend cuda --synthetic llama3-8b --num-prompts ${KEEL_PROMPTS:-128} --concurrency 64 \
        --input-len 128 --output-len 1024 --max-num-seqs 64 --max-num-batched-tokens 2048 --temperature 1 --top-p 0.9 \
        2>&1 | tee -a "$OUT/serve_bench.txt"
      $B/keel bench --backend cuda --synthetic llama3-8b --prompt-tokens 640 --decode-tokens 32 --batches 64 2>&1 |
        tee -a "$OUT/serve_bench.txt" | grep -E "decode" ;;
    cache-bench)
      # Issue 7 on the GPU: TTFT cold vs warm from device / RAM / SSD tiers for the 8B shape.
      $B/keel bench cache --backend cuda --synthetic llama3-8b --prompt-lengths ${KEEL_CACHE_LENGTHS:-1k,8k,32k} \
        --skip-index --dir /tmp/keel-cache-bench 2>&1 | tee "$OUT/cache_bench.txt" ;;
    gemv)
      # The decode GEMV against cuBLAS on the 8B shapes (dev/kernels/gemv_v1.cu).
      nvcc -O3 -std=c++17 -gencode=arch=compute_90,code=sm_90 -Isrc -o /tmp/gemv_v1 dev/kernels/gemv_v1.cu -lcublas &&
        /tmp/gemv_v1 2>&1 | tee "$OUT/gemv.txt" ;;
    doctor)
      $B/keel doctor --ssd-cache-dir /tmp/keel-cache 2>&1 | tee "$OUT/doctor.txt"; echo "doctor exit ${PIPESTATUS[0]}" ;;
    peer)
      PYTHONUNBUFFERED=1 python3 .device/peer/torch_llama.py --shape llama3-8b --batch 1 8 64 --no-hf \
        > "$OUT/peer.jsonl" 2> "$OUT/peer.err"; cat "$OUT/peer.jsonl"; tail -3 "$OUT/peer.err" ;;
    tp)
      "$0" tp-tests tp-run ;;
    tp-tests|tp-run)
      # Tensor parallelism on two GPUs (issue 9, docs/DISTRIBUTED.md), NVLink multicast off everywhere. tp-tests is
      # step 1 (~6 min), tp-run steps 2-4 (~6 min): each fits one device command.
      export NCCL_NVLS_ENABLE=0
      if [ "$stage" = tp-tests ]; then
      # 1. One process per GPU, as the product runs (tests/parallel_cli_test.cpp, docs/DISTRIBUTED.md "Tests"):
      #    keel logits and generate at TP=2 and PP=2 against one GPU and transformers on the goldens (greedy and
      #    seeded sampling), keel serve TP=2 against one GPU (4 concurrent requests: decode graphs with NCCL captured,
      #    no allocation after warm-up, SIGTERM exit 0); then NCCL's own collectives and a rank that exits.
      ninja -C $B -j16 keel keel_e2e_test > "$OUT/tp_build.log" 2>&1 || { grep -m20 -A5 "error" "$OUT/tp_build.log"; exit 1; }
      timeout 420 $B/keel_e2e_test --gtest_filter='Cuda/*:ServeTensorParallel.Cuda*' 2>&1 | tee "$OUT/tp_test.log" |
        grep -E "^\[tp\]|OK \]|FAILED|SKIPPED \]|Failure|error:"
      timeout 60 $B/src/backend/cuda/keel_backend_cuda_test --gtest_filter='*Nccl*' 2>&1 | tee -a "$OUT/tp_test.log" |
        grep -E "^\[tp\]|OK \]|FAILED|SKIPPED|Failure|error:"
      continue
      fi
      # 2. Decode tok/s at batch 1 and 64, TP=1 then TP=2 for the 8B shape (all-reduce per step, bus bandwidth),
      #    then the 70B shape, which only fits two GPUs.
      for tp in 1 2; do
        timeout 100 $B/keel bench --backend cuda --synthetic llama3-8b --tensor-parallel $tp --prompt-tokens 128 \
          --decode-tokens 16 --batches 1,64 2>&1 | tee -a "$OUT/tp_bench.txt" | grep -vE "^  prefill"
      done
      # 70B at TP=2 per GPU: 65.7 GiB of weights, 2.8 GiB of KV (64 x 272 tokens), 4 GiB for the HBM probe.
      [ -n "${KEEL_SKIP_70B:-}" ] || timeout 200 $B/keel bench --backend cuda --synthetic llama3-70b --tensor-parallel 2 --prompt-tokens 128 \
        --decode-tokens 8 --batches 1,64 2>&1 | tee -a "$OUT/tp_bench.txt"
      # 3. keel serve --tensor-parallel 2: the demo model's greedy text against one GPU's, then kill -9 rank 1:
      #    /health turns unhealthy, requests fail, the launcher exits 1 (no hang).
      body='{"model":"demo","prompt":"Once upon a time","max_tokens":32,"temperature":0}'
      $B/keel serve --backend cuda --port 8092 > "$OUT/tp_serve1.log" 2>&1 &
      pid=$!
      for _ in $(seq 1 300); do curl -sf 127.0.0.1:8092/health >/dev/null && break; sleep 0.1; done
      echo "TP=1: $(curl -s 127.0.0.1:8092/v1/completions -H 'content-type: application/json' -d "$body")"
      kill -TERM $pid; wait $pid
      $B/keel serve --backend cuda --tensor-parallel 2 --port 8091 > "$OUT/tp_serve.log" 2>&1 &
      pid=$!
      for _ in $(seq 1 600); do curl -sf 127.0.0.1:8091/health >/dev/null && break; sleep 0.1; done
      grep -E "^keel: (launched|rank)" "$OUT/tp_serve.log"
      echo "TP=2: $(curl -s 127.0.0.1:8091/v1/completions -H 'content-type: application/json' -d "$body")"
      curl -sN 127.0.0.1:8091/v1/completions -H 'content-type: application/json' -d "${body%\}},\"stream\":true}" | tail -2
      curl -s 127.0.0.1:8091/metrics | grep -E "allocations_after_warmup"
      rank1=$(grep -oE "pids [0-9]+ [0-9]+" "$OUT/tp_serve.log" | cut -d' ' -f3)
      kill -9 "$rank1"; sleep 2
      echo "health after kill: $(curl -s 127.0.0.1:8091/health)"
      echo "request after kill: $(curl -s 127.0.0.1:8091/v1/completions -H 'content-type: application/json' -d "$body")"
      timeout 90 tail --pid=$pid -f /dev/null; wait $pid; echo "tp serve exit $? (1 expected)"
      tail -4 "$OUT/tp_serve.log"
      # 4. A rank that stops answering mid-step: NCCL waits on it until --dist-timeout, then aborts.
      $B/keel serve --backend cuda --tensor-parallel 2 --port 8093 --dist-timeout 5 > "$OUT/tp_serve_stop.log" 2>&1 &
      pid=$!
      for _ in $(seq 1 600); do curl -sf 127.0.0.1:8093/health >/dev/null && break; sleep 0.1; done
      rank1=$(grep -oE "pids [0-9]+ [0-9]+" "$OUT/tp_serve_stop.log" | cut -d' ' -f3)
      kill -STOP "$rank1"
      echo "request to a stopped group: $(curl -s -m 30 127.0.0.1:8093/v1/completions -H 'content-type: application/json' -d "$body")"
      timeout 90 tail --pid=$pid -f /dev/null; wait $pid; echo "tp serve (stopped rank) exit $? (1 expected)" ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
