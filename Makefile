# mailroom — the top Makefile drives CMake; every program lands in build/bin.
#   make demo    install dependencies if missing, build, deliver a message, print it back
#   make check   install dependencies, build with -Werror, run every test (then ASan/UBSan)
#   make bench   benchmarks side by side with the peers (tests/bench)
#   make fuzz    libFuzzer targets of tests/fuzz, FUZZ_SECONDS each (default 30)
JOBS ?= $(shell nproc)
BUILD ?= build
SAN_BUILD ?= build-asan

FUZZ_SECONDS ?= 30

.PHONY: all deps build check unit-asan demo bench fuzz clean

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory

check: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory unit-asan

# The unit tests again under AddressSanitizer and UndefinedBehaviorSanitizer.
unit-asan: deps
	@cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMAILROOM_SANITIZE=ON -DMAILROOM_UNIT_ONLY=ON >/dev/null
	@cmake --build $(SAN_BUILD) -j $(JOBS) -- --no-print-directory
	cd $(SAN_BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD)/bin

bench: build
	@bash tests/bench/run.sh $(BUILD)/bin

# libFuzzer targets (clang), each run FUZZ_SECONDS from its corpus.
fuzz: deps
	@CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMAILROOM_FUZZ=ON -DMAILROOM_UNIT_ONLY=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS) -- --no-print-directory
	@bash tests/fuzz/run.sh build-fuzz/bin $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(SAN_BUILD) build-fuzz var
