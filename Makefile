# tollgate — the map of how to work on the project.
#   make            build build/tollgate (warnings are errors)
#   make test       unit tests + end-to-end tests
#   make asan       the same suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make fuzz       every fuzz target for FUZZ_SECONDS each (libFuzzer, clang)
#   make bench      benchmarks; figures go to docs/benchmarks.md
#   make soak       minutes of mixed load with injected faults (SOAK_SECONDS); not in CI
#   make check      what CI runs: set-up, build, test, asan, short fuzz
#   make up         set up, build and run the local stack
#
# Sources are found, not listed: src/*/*.c is the library (less src/cli/main.c),
# tests/unit/test_*.c are one binary each, tests/fuzz/fuzz_*.c one fuzzer each.
# Files named *_avx2.c / *_avx512.c are compiled with those ISA flags and must only
# be called behind the runtime CPU dispatch.

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Werror -Wno-unused-parameter
BASE    := -std=gnu11 -pthread -fno-strict-aliasing -Isrc $(WARN)
LDLIBS  := -lyaml -lsqlite3 -lm -pthread
AVX2    := -mavx2 -mfma -mf16c -ffp-contract=off
AVX512  := $(AVX2) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni

SRCS    := $(sort $(wildcard src/*/*.c))
LIBSRCS := $(filter-out src/cli/main.c,$(SRCS))
TESTS   := $(sort $(wildcard tests/unit/test_*.c))
FUZZERS := $(sort $(wildcard tests/fuzz/fuzz_*.c))

B       ?= build
# Builds use both cores; targets whose order matters call $(MAKE) step by step.
MAKEFLAGS += -j$(shell nproc)
OBJS     = $(patsubst src/%.c,$(B)/obj/%.o,$(LIBSRCS))
TESTBINS = $(patsubst tests/unit/%.c,$(B)/tests/%,$(TESTS))

all: $(B)/tollgate $(TESTBINS)

isa_flags = $(if $(findstring _avx512,$(1)),$(AVX512),$(if $(findstring _avx2,$(1)),$(AVX2)))

$(B)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(CFLAGS) $(call isa_flags,$<) -MMD -MP -c $< -o $@

$(B)/libtollgate.a: $(OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/tollgate: src/cli/main.c $(B)/libtollgate.a
	$(CC) $(BASE) $(CFLAGS) -MMD -MP $< $(B)/libtollgate.a $(LDLIBS) -o $@

$(B)/tests/%: tests/unit/%.c $(B)/libtollgate.a tests/unit/check.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(CFLAGS) -Itests/unit -MMD -MP $< $(B)/libtollgate.a $(LDLIBS) -o $@

-include $(shell find $(B) -name '*.d' 2>/dev/null)

setup:
	bash scripts/setup.sh

test: all
	TOLLGATE_BUILD=$(B) bash tests/run.sh

ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
asan:
	$(MAKE) B=build/asan CFLAGS="$(ASAN_FLAGS)" all
	TOLLGATE_BUILD=build/asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 bash tests/run.sh

FUZZ_SECONDS ?= 20
# where the fuzz build goes (one per engineer when several share a tree)
FUZZ_B ?= build/fuzz
FUZZ_FLAGS := -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
fuzz-build:
	$(MAKE) B=$(FUZZ_B) CC=clang CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" $(FUZZ_B)/libtollgate.a
	@mkdir -p $(FUZZ_B)/bin
	@for f in $(FUZZERS); do n=$$(basename $$f .c); \
	  echo "clang $$f"; \
	  clang $(BASE) $(FUZZ_FLAGS) $$f $(FUZZ_B)/libtollgate.a $(LDLIBS) -o $(FUZZ_B)/bin/$$n || exit 1; done

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_BUILD=$(FUZZ_B) bash tests/fuzz/run.sh

bench: all
	bash bench/run.sh

soak: all
	TOLLGATE_BUILD=$(B) bash bench/soak.sh

check: setup
	$(MAKE) all
	$(MAKE) test
	$(MAKE) asan
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

up: setup
	$(MAKE) all
	$(B)/tollgate up

format:
	clang-format -i $(SRCS) $(wildcard src/*/*.h) $(TESTS) $(FUZZERS)

clean:
	rm -rf build

.PHONY: all setup test asan fuzz fuzz-build bench soak check up format clean
