# ftprof — top-level entry points. `make demo` and `make test` are the two commands a new user runs.
# Everything here is idempotent: a second run reuses the build and the cached interpreter.

BUILD   ?= build
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# System packages: build tools, recorder/analyzer libraries, CPython's build dependencies, and the
# tools the tests drive (go for `go tool pprof`, chromium for the HTML flame graph and the speedscope
# timeline, clang for fuzzing, GNU time for the analyzer's peak memory, elfutils' debuginfod server
# to serve an interpreter's debug information to the analyzer), and npm (Debian's, unless the
# machine has one already, e.g. with its own Node.js) to fetch speedscope.
DEPS_BUILD  := meson ninja-build pkg-config gcc libunwind-dev libdw-dev libelf-dev zlib1g-dev \
               libprotobuf-c-dev protobuf-c-compiler libjansson-dev
DEPS_PYTHON := build-essential libssl-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev \
               libreadline-dev libncurses-dev uuid-dev libgdbm-dev libexpat1-dev xz-utils dpkg-dev curl \
               libzstd-dev
DEPS_TEST   := golang-go chromium clang libclang-rt-14-dev valgrind python3-pip time tmux debuginfod
DEPS        := $(DEPS_BUILD) $(DEPS_PYTHON) $(DEPS_TEST)

.PHONY: deps build test demo bench soak clean

deps:
	@missing=$$(dpkg-query -W -f='$${Package} $${Status}\n' $(DEPS) 2>/dev/null | \
	    awk '$$NF=="installed"{print $$1}' | sort > /tmp/.ftprof-have.$$$$; \
	    for p in $(DEPS); do grep -qx "$$p" /tmp/.ftprof-have.$$$$ || echo $$p; done; rm -f /tmp/.ftprof-have.$$$$); \
	if [ -n "$$missing" ]; then \
	    echo "make deps: installing $$missing" >&2; \
	    $(SUDO) apt-get update -qq >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@command -v npm >/dev/null || { echo "make deps: installing npm" >&2; $(SUDO) apt-get update -qq >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends npm >/dev/null; }
	@# speedscope's web page for the timeline test, pinned by SHA-512 (tools/speedscope-sha512.txt) and
	@# cached outside the repo; the test fetches it itself when this could not.
	@tools/speedscope >/dev/null || echo "make deps: speedscope could not be fetched (tools/speedscope)" >&2
	@# The end-to-end tests are pytest files validating reports with jsonschema, run by the system python3.
	@python3 -c 'import pytest, jsonschema' 2>/dev/null || \
	    python3 -m pip install -q pytest jsonschema 2>/dev/null || \
	    python3 -m pip install -q --break-system-packages pytest jsonschema

build: deps
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) --buildtype=debugoptimized >/dev/null
	@meson compile -C $(BUILD) >/dev/null

python: deps
	@tools/ft-python >/dev/null

test: build
	@BUILD=$(BUILD) tools/run-tests

demo: build
	@tools/demo

bench: build
	@BUILD=$(BUILD) tools/bench
	@BUILD=$(BUILD) tools/bench-service

# Not part of `make bench` (it takes 10 minutes): the service in ring mode beside one without the
# recorder; options through SOAK, e.g. make soak SOAK="--version 3.14 --minutes 2 --window 20".
soak: build
	@BUILD=$(BUILD) tools/soak-service $(SOAK)

clean:
	rm -rf $(BUILD)
