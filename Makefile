# Thin entry points over CMake. `make` builds build/loramix.
BUILD ?= build
JOBS ?= $(shell nproc)
# `make install PREFIX=/usr/local [DESTDIR=/tmp/stage]`: a portable build
# (no -march=native unless INSTALL_NATIVE=ON) in its own folder, installed.
PREFIX ?= /usr/local
INSTALL_BUILD ?= build-install
INSTALL_NATIVE ?= OFF

.PHONY: all build test test-asan test-tsan fuzz bench demo clean deps reference install
all: build

deps:
	./scripts/setup-deps.sh

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

install:
	cmake -S . -B $(INSTALL_BUILD) -DCMAKE_BUILD_TYPE=Release -DLMX_NATIVE=$(INSTALL_NATIVE) \
	    -DCMAKE_INSTALL_PREFIX=$(PREFIX) -DLMX_DEFAULT_DATA_DIR=$(PREFIX)/share/loramix >/dev/null
	cmake --build $(INSTALL_BUILD) -j $(JOBS) --target loramix loramix_shared loramix_cli
	DESTDIR=$(DESTDIR) cmake --install $(INSTALL_BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLMX_SANITIZE=ON >/dev/null
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j $(JOBS)

# The two-contexts-one-model test under ThreadSanitizer. libgomp is not
# TSan-instrumented, so OpenMP runs one thread: TSan sees only the test's.
test-tsan:
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLMX_TSAN=ON >/dev/null
	cmake --build build-tsan -j $(JOBS) --target test_ctx_threads
	OMP_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1" ./build-tsan/tests/test_ctx_threads

fuzz:
	./scripts/fuzz.sh

bench: build
	./scripts/bench.sh

demo: build
	./scripts/demo.sh

reference:
	PY=$${PY:-/opt/lmxref/bin/python3} ./reference/regen.sh

clean:
	rm -rf build build-asan build-tsan build-fuzz $(INSTALL_BUILD)
