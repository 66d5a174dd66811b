# Makefile - builds, tests and installs brick. GNU make; `make help` lists the targets.
#
# Layout: every src/*/*.c goes into libbrick.a and libbrick.so; tools/*.c make the `brick`
# CLI; each tests/test_*.c is a test binary, each examples/*.c an example program and each
# bench/*.c a benchmark (built by `all`, so that `make test` can smoke-test them), all
# linked against libbrick.a. Everything built lands under $(BUILD) (build/, or build-san/
# with SAN=1), mirroring the source tree.
#
# Options (on the command line: `make BLAS=0 SAN=1`):
#   BLAS=0|auto|1    OpenBLAS for the gemm backend. 0 (default): brick's own SGEMM
#                    (src/kernels/gemm.c), which matches OpenBLAS on brick's shapes, gives
#                    the same bits for any thread count and shares brick's OpenMP threads
#                    (OpenBLAS's own thread pool fights them: LeNet trained 2.7x slower on
#                    2 threads, docs/performance.md); auto: OpenBLAS when `pkg-config
#                    --exists openblas` succeeds; 1: OpenBLAS required (error if absent).
#   OPENMP=auto|0|1  OpenMP threading via -fopenmp. auto (default): used when $(CC) can
#                    compile and link a program that includes <omp.h> with -fopenmp.
#   MPI=auto|0|1     data-parallel training on Open MPI (src/dist/dist.c, docs/distributed.md).
#                    auto (default): used when `mpicc --showme:link` works; without it the
#                    bk_dist_* calls work on a world of one process.
#   IMAGES=auto|0|1  PNG and JPEG images (bk_image_load, `brick predict`) through stb_image
#                    (Debian: libstb-dev, found with `pkg-config --exists stb`). auto
#                    (default): used when found; without it PGM images are still read and
#                    PNG/JPEG files are refused with a message saying what to install.
#   SAN=1            AddressSanitizer + UndefinedBehaviorSanitizer build in build-san/.
#   BUILD=dir        build directory (default build, or build-san with SAN=1).
#   CC, CFLAGS, LDFLAGS, WERROR, PREFIX, LIBDIR, INCLUDEDIR, DESTDIR: as usual. CFLAGS only
#                    holds optimisation and debug flags; the language standard, warnings,
#                    include paths and feature flags are always added (see ALL_CFLAGS).
#
# A change of compiler or flags (say BLAS=0 after BLAS=1) rebuilds everything: the full
# command line is kept in $(BUILD)/.config and every object depends on it.

.DEFAULT_GOAL := all
.DELETE_ON_ERROR:
.SUFFIXES:

SHELL      := /bin/bash
CC         ?= cc
AR         ?= ar
PKG_CONFIG ?= pkg-config
PYTHON     ?= /usr/bin/python3

SAN    ?= 0
BLAS   ?= 0
OPENMP ?= auto
MPI    ?= auto

HASH := \#
# The version comes from the header, the single place that states it.
VERSION       := $(shell sed -n 's/^$(HASH)define BK_VERSION_STRING "\(.*\)"/\1/p' include/brick.h)
VERSION_MAJOR := $(firstword $(subst ., ,$(VERSION)))
ifeq ($(VERSION),)
  $(error could not read BK_VERSION_STRING from include/brick.h)
endif

ifneq ($(origin BUILD),command line)
  BUILD := $(if $(filter 1,$(SAN)),build-san,build)
endif

# ---- flags ------------------------------------------------------------------------------

ifeq ($(SAN),1)
  CFLAGS    ?= -O1 -g
  SAN_FLAGS := -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
else
  CFLAGS    ?= -O2 -g
  SAN_FLAGS :=
endif

WARNINGS := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
WERROR   ?= -Werror
# clang reports every `#pragma omp simd` loop it leaves scalar (a libm call in the body) as
# a failed transformation; the pragma is a hint, and gcc vectorizes those loops.
ifneq ($(findstring clang,$(shell $(CC) --version 2>/dev/null | head -n 1)),)
  WARNINGS += -Wno-pass-failed
endif

# Goals that need no compiler probing (and must work on a machine without a toolchain).
NOBUILD_GOALS := clean help uninstall
BUILDING := $(filter-out $(NOBUILD_GOALS),$(or $(MAKECMDGOALS),all))

# $(call check_01,NAME): the error for a value of the option NAME other than auto, 0 or 1.
check_01 = $(if $(filter-out auto 0 1,$($1))$(filter-out 1,$(words $($1))),$(error $1 must be auto, 0 or 1 (got '$($1)')))

# OpenMP: a real compile-and-link probe, since `-fopenmp` alone can be accepted by a compiler
# whose runtime (libgomp/libomp) is missing.
ifeq ($(OPENMP),auto)
  ifneq ($(BUILDING),)
    OPENMP := $(shell tmp=$$(mktemp -d) && \
      printf '$(HASH)include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n' \
        > $$tmp/omp.c && $(CC) -fopenmp $$tmp/omp.c -o $$tmp/omp >/dev/null 2>&1 && echo 1 || echo 0; \
      rm -rf $$tmp)
  else
    OPENMP := 0
  endif
endif
ifeq ($(OPENMP),1)
  OMP_FLAGS  := -fopenmp
  OMP_CFLAGS := -fopenmp
else ifeq ($(OPENMP),0)
  OMP_FLAGS  :=
  # the `#pragma omp` lines then compile as the serial loops they annotate
  OMP_CFLAGS := -Wno-unknown-pragmas
else
  $(error OPENMP must be auto, 0 or 1 (got '$(OPENMP)'))
endif

# OpenBLAS: found through pkg-config (Debian: libopenblas-dev).
ifneq ($(BUILDING),)
  HAVE_OPENBLAS := $(shell $(PKG_CONFIG) --exists openblas 2>/dev/null && echo 1 || echo 0)
else
  HAVE_OPENBLAS := 0
endif
$(call check_01,BLAS)
ifeq ($(BLAS),auto)
  BLAS := $(HAVE_OPENBLAS)
else ifeq ($(BLAS),1)
  ifeq ($(HAVE_OPENBLAS),0)
    ifneq ($(BUILDING),)
      $(error BLAS=1 but `$(PKG_CONFIG) --exists openblas` fails: install libopenblas-dev (scripts/deps.sh --blas) or use BLAS=0)
    endif
  endif
endif
ifeq ($(BLAS),1)
  BLAS_CFLAGS := -DBK_HAVE_OPENBLAS $(shell $(PKG_CONFIG) --cflags openblas)
  BLAS_LIBS   := $(shell $(PKG_CONFIG) --libs openblas)
else
  BLAS_CFLAGS :=
  BLAS_LIBS   :=
endif

# Open MPI: found through its compiler wrapper (Debian: openmpi-bin libopenmpi-dev). Its
# include directories go in as -isystem, so that -Wpedantic judges brick's code, not mpi.h.
MPICC ?= mpicc
$(call check_01,MPI)
ifeq ($(MPI),auto)
  ifneq ($(BUILDING),)
    MPI := $(shell command -v $(MPICC) >/dev/null 2>&1 && $(MPICC) --showme:link >/dev/null 2>&1 && echo 1 || echo 0)
  else
    MPI := 0
  endif
else ifeq ($(MPI),1)
  ifneq ($(BUILDING),)
    ifneq ($(shell command -v $(MPICC) >/dev/null 2>&1 && echo 1),1)
      $(error MPI=1 but $(MPICC) is not found: install openmpi-bin libopenmpi-dev (scripts/deps.sh) or use MPI=0)
    endif
  endif
endif
ifeq ($(MPI),1)
  MPI_CFLAGS := -DBK_HAVE_MPI $(patsubst -I%,-isystem %,$(shell $(MPICC) --showme:compile))
  MPI_LIBS   := $(shell $(MPICC) --showme:link)
else
  MPI_CFLAGS :=
  MPI_LIBS   :=
endif

# stb_image (Debian: libstb-dev): PNG and JPEG decoding in src/io/image.c. Its headers go
# in as -isystem, as MPI's do.
IMAGES ?= auto
$(call check_01,IMAGES)
ifneq ($(BUILDING),)
  HAVE_STB := $(shell $(PKG_CONFIG) --exists stb 2>/dev/null && echo 1 || echo 0)
else
  HAVE_STB := 0
endif
ifeq ($(IMAGES),auto)
  IMAGES := $(HAVE_STB)
else ifeq ($(IMAGES),1)
  ifeq ($(HAVE_STB),0)
    ifneq ($(BUILDING),)
      $(error IMAGES=1 but `$(PKG_CONFIG) --exists stb` fails: install libstb-dev (scripts/deps.sh) or use IMAGES=0)
    endif
  endif
endif
ifeq ($(IMAGES),1)
  STB_CFLAGS := -DBK_HAVE_STB $(patsubst -I%,-isystem %,$(shell $(PKG_CONFIG) --cflags stb))
  STB_LIBS   := $(shell $(PKG_CONFIG) --libs stb)
else
  STB_CFLAGS :=
  STB_LIBS   :=
endif

ALL_CPPFLAGS = $(strip -Iinclude -Isrc $(BLAS_CFLAGS) $(MPI_CFLAGS) $(STB_CFLAGS) $(CPPFLAGS))
ALL_CFLAGS   = $(strip -std=c11 $(CFLAGS) -fPIC $(WARNINGS) $(WERROR) $(OMP_CFLAGS) $(SAN_FLAGS))
ALL_LDFLAGS  = $(strip $(SAN_FLAGS) $(LDFLAGS))
# zlib: src/data reads gzip-compressed IDX files (Debian: zlib1g-dev).
SYS_LIBS     := -lz -lm
# stb and MPI last: LDLIBS may add libbrick.a itself (test_fuzz_replay), which needs them.
LIBS         = $(strip $(BLAS_LIBS) $(SYS_LIBS) $(OMP_FLAGS) $(LDLIBS) $(STB_LIBS) $(MPI_LIBS))
# The shared library must resolve every symbol itself (catches a missing -l early); the
# sanitizer runtimes are an exception, they come from the executable.
SO_LDFLAGS   = -shared -Wl,-soname,libbrick.so.$(VERSION_MAJOR) $(if $(SAN_FLAGS),,-Wl,-z,defs)

# ---- sources and products ---------------------------------------------------------------

LIB_SRCS     := $(sort $(wildcard src/*/*.c))
TEST_SRCS    := $(sort $(wildcard tests/test_*.c))
EXAMPLE_SRCS := $(sort $(wildcard examples/*.c))
BENCH_SRCS   := $(sort $(wildcard bench/*.c))
TOOL_SRCS    := $(sort $(wildcard tools/*.c))
# brick.h's parts, installed beside it in brick/
PUBLIC_PARTS := $(sort $(wildcard include/brick/*.h))

LIB_OBJS     := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB_A        := $(BUILD)/libbrick.a
LIB_SO       := $(BUILD)/libbrick.so
TEST_BINS    := $(TEST_SRCS:%.c=$(BUILD)/%)
EXAMPLE_BINS := $(EXAMPLE_SRCS:%.c=$(BUILD)/%)
BENCH_BINS   := $(BENCH_SRCS:%.c=$(BUILD)/%)
# tools/*.c together make the `brick` command-line program (once it exists).
TOOL_BIN     := $(if $(TOOL_SRCS),$(BUILD)/brick)
PC_FILE      := $(BUILD)/brick.pc

ALL_OBJS := $(LIB_OBJS) $(TEST_BINS:%=%.o) $(EXAMPLE_BINS:%=%.o) $(BENCH_BINS:%=%.o) \
            $(TOOL_SRCS:%.c=$(BUILD)/%.o)

# ---- configuration stamp ----------------------------------------------------------------

CONFIG_STAMP := $(BUILD)/.config
CONFIG_LINE   = $(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) | $(ALL_LDFLAGS) $(LIBS)
ifneq ($(BUILDING),)
  $(shell mkdir -p $(BUILD) && { [ "$$(cat $(CONFIG_STAMP) 2>/dev/null)" = '$(CONFIG_LINE)' ] \
      || printf '%s\n' '$(CONFIG_LINE)' > $(CONFIG_STAMP); })
endif

# ---- build rules ------------------------------------------------------------------------

.PHONY: all lib tests examples bench tools test valgrind demo install uninstall clean help config

all: lib tests examples bench $(TOOL_BIN)
lib: $(LIB_A) $(LIB_SO) $(PC_FILE)
tests: $(TEST_BINS)
examples: $(EXAMPLE_BINS)
bench: $(BENCH_BINS)
tools: $(TOOL_BIN)

$(BUILD)/%.o: %.c $(CONFIG_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIB_A): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(LIB_SO): $(LIB_OBJS)
	$(CC) $(ALL_LDFLAGS) $(SO_LDFLAGS) -o $@ $^ $(LIBS)

# Programs link libbrick.a, so they run from the build tree without LD_LIBRARY_PATH.
$(TEST_BINS) $(EXAMPLE_BINS) $(BENCH_BINS): $(BUILD)/%: $(BUILD)/%.o $(LIB_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(TOOL_BIN): $(TOOL_SRCS:%.c=$(BUILD)/%.o) $(LIB_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# tests/test_fuzz_replay replays the CLI fuzz target too, so it links the brick command's
# objects without its main (tools/main.c); libbrick.a is named once more after them, for
# the symbols only they need.
CLI_OBJS := $(filter-out $(BUILD)/tools/main.o,$(TOOL_SRCS:%.c=$(BUILD)/%.o))
$(BUILD)/tests/test_fuzz_replay: $(CLI_OBJS)
$(BUILD)/tests/test_fuzz_replay: LDLIBS += $(LIB_A)

# Made at parse time (above); this empty rule only tells make that it needs no recipe.
$(CONFIG_STAMP): ;

-include $(ALL_OBJS:.o=.d)

# ---- pkg-config file --------------------------------------------------------------------

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PCDIR      ?= $(LIBDIR)/pkgconfig
DATADIR    ?= $(PREFIX)/share/brick
# what ships with the CLI (found from <prefix>/bin/brick as <prefix>/share/brick, tools/cli.c)
DATA_FILES := $(wildcard data/fashion-mnist-subset/*.gz data/fashion-mnist-subset/README.md) \
              data/text/fortunes-sample.txt data/text/README.md

# Written on every make run that needs it (PREFIX may differ from the last run); the
# prerequisite-free FORCE keeps it simple and it costs one sed.
$(PC_FILE): brick.pc.in FORCE
	@mkdir -p $(@D)
	@sed -e 's|@PREFIX@|$(PREFIX)|g' \
	     -e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|g' \
	     -e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|g' \
	     -e 's|@VERSION@|$(VERSION)|g' \
	     -e 's|@LIBS_PRIVATE@|$(strip $(BLAS_LIBS) $(STB_LIBS) $(MPI_LIBS) $(SYS_LIBS) $(OMP_FLAGS))|g' \
	     $< > $@.tmp && mv $@.tmp $@

FORCE:

# ---- running ----------------------------------------------------------------------------

# Sanitizer settings for every run in this make (harmless for unsanitized programs).
export ASAN_OPTIONS  ?= detect_leaks=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
export BRICK_PYTHON  ?= $(PYTHON)

# Each program's result is a target: $(TEST_LOGS)/<path>.tap (tests/test_ops ->
# build/test-logs/tests/test_ops.tap, tests/test_cli.sh -> .../tests/test_cli.sh.tap,
# examples/01_sequential_mlp -> .../examples/01_sequential_mlp.tap), made by `prove` (perl's
# TAP runner) through scripts/run_tests.sh run, and only when the program, its inputs or the
# runner changed, or it failed last time: `make test` reruns only those, `make -j2 test`
# runs two at once, `make test T="test_ops test_cli.sh"` (names without .tap) runs only
# those, FRESH=1 forgets every earlier result and the parity data first. The test
# binaries and scripts speak TAP (tests/test.h, tests/lib.sh); an example passes when it
# exits 0. The last line is "N passed, M failed", one per program.
TEST_LOGS    ?= $(BUILD)/test-logs
TEST_SCRIPTS := $(sort $(wildcard tests/test_*.sh))
SCRIPT_TAPS  := $(TEST_SCRIPTS:%=$(TEST_LOGS)/%.tap)
EXAMPLE_TAPS := $(EXAMPLE_BINS:$(BUILD)/%=$(TEST_LOGS)/%.tap)
TEST_TAPS    := $(TEST_BINS:$(BUILD)/%=$(TEST_LOGS)/%.tap)
# The scripts and examples first: the longest programs start before the short tests fill
# the gaps (under valgrind test_cli.sh, test_interrupt.sh and 07_seq2seq_reverse take minutes).
ALL_TAPS     := $(SCRIPT_TAPS) $(EXAMPLE_TAPS) $(TEST_TAPS)
T            ?=
TAPS          = $(if $(T),$(filter $(foreach t,$(T),%/$(t).tap),$(ALL_TAPS)),$(ALL_TAPS))
RUN_TESTS    := scripts/run_tests.sh

# PyTorch parity data (tests/parity/gen_*.py): generated once into $(BUILD)/parity with a
# fresh random seed, again when a generator changes, with FRESH=1, or when BRICK_SEED names
# another seed than the last data's (the seed file is rewritten here, at parse time, only
# then). The parity tests depend on it; BRICK_PARITY_DIR is always set, and the directory
# exists only when PyTorch made the data (a parity test without it skips, or fails with
# BRICK_REQUIRE_TORCH=1).
PARITY_STAMP := $(BUILD)/parity.stamp
PARITY_SEED  := $(BUILD)/parity.seed
export BRICK_PARITY_DIR := $(abspath $(BUILD)/parity)
ifneq ($(filter test %.tap,$(BUILDING)),)
  ifeq ($(FRESH),1)
    $(shell rm -rf $(TEST_LOGS) $(PARITY_STAMP))
  endif
  ifneq ($(BRICK_SEED),)
    $(shell mkdir -p $(BUILD) && { [ "$$(cat $(PARITY_SEED) 2>/dev/null)" = '$(BRICK_SEED)' ] \
        || printf '%s\n' '$(BRICK_SEED)' > $(PARITY_SEED); })
  endif
endif
# (A parity test's earlier result goes first: it says nothing about the new data.)
$(PARITY_STAMP): $(sort $(wildcard tests/parity/*.py)) $(wildcard $(PARITY_SEED)) $(RUN_TESTS)
	@rm -f $(filter $(TEST_LOGS)/tests/test_parity%,$(TEST_TAPS))
	@bash $(RUN_TESTS) parity $@ && cp $@ $(PARITY_SEED) && touch $@

$(TEST_TAPS): $(TEST_LOGS)/%.tap: $(BUILD)/% $(RUN_TESTS)
	@bash $(RUN_TESTS) run test $< $@
$(filter $(TEST_LOGS)/tests/test_parity%,$(TEST_TAPS)): $(PARITY_STAMP)
$(TEST_LOGS)/tests/test_fuzz_replay.tap: $(wildcard fuzz/corpus/*/* fuzz/regressions/*/*)
$(EXAMPLE_TAPS): $(TEST_LOGS)/%.tap: $(BUILD)/% $(RUN_TESTS)
	@bash $(RUN_TESTS) run example $< $@
# A script runs brick, the examples, the benchmarks and the Python helpers of the tree.
$(SCRIPT_TAPS): $(TEST_LOGS)/%.tap: % tests/lib.sh $(RUN_TESTS) scripts/wrap_brick.sh $(TOOL_BIN) \
                $(EXAMPLE_BINS) $(BENCH_BINS) $(wildcard tests/*.py tests/parity/*.py bench/*.py scripts/*.py examples/*.py)
	@BRICK_BUILD=$(BUILD) bash $(RUN_TESTS) run script $< $@

test: all
	@$(if $(TAPS),,echo "make test: T='$(T)' names no test (see make help)" >&2; exit 2;) \
	$(MAKE) --no-print-directory -s -k $(TAPS) FRESH=; \
	bash $(RUN_TESTS) summary $(if $(filter $(TEST_LOGS)/tests/test_parity%,$(TAPS)),$(PARITY_STAMP),-) $(TAPS)

# The whole suite under valgrind: every test binary and example, and every `brick` the CLI test
# scripts start (through BRICK_CLI=scripts/wrap_brick.sh, one valgrind log per run); any error
# or definite or indirect leak fails it. Its results go to $(BUILD)/valgrind-logs (T= and
# FRESH=1 work as for `make test`). valgrind runs a program's threads one at a time on one
# core, so VALGRIND_JOBS programs (default: the number of cores) run at once, and libgomp's
# idle threads sleep instead of spinning (OMP_WAIT_POLICY=passive: under valgrind a spinning
# thread burns whole time slices; the attention gradient checks took 400 s instead of 20).
# BRICK_TEST_QUICK=1 makes the tests repeat randomised checks fewer times (test_reps in
# tests/test.h). docs/reliability.md has the timings.
VALGRIND      ?= valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect
VALGRIND_JOBS ?= $(shell nproc 2>/dev/null || echo 1)
valgrind: all
ifeq ($(SAN),1)
	$(error valgrind and the sanitizers do not mix: run `make valgrind` without SAN=1)
endif
	@command -v valgrind >/dev/null || { echo "valgrind not found (scripts/deps.sh installs it)" >&2; exit 1; }
	@BRICK_TEST_WRAPPER='$(VALGRIND)' BRICK_TEST_TIMEOUT=$${BRICK_TEST_TIMEOUT:-3600} \
	    OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} BRICK_TEST_QUICK=$${BRICK_TEST_QUICK:-1} \
	    $(MAKE) --no-print-directory -j$(VALGRIND_JOBS) test TEST_LOGS=$(BUILD)/valgrind-logs

# The main job: every example in name order, then the brick CLI trains the MLP on
# Fashion-MNIST (the full set from Debian's dataset-fashion-mnist when installed, else the
# bundled subset in data/; BRICK_DATA overrides) and prints the test accuracy. Stops at the
# first failure. DEMO_ARGS adds `brick train` options (e.g. DEMO_ARGS="--epochs 2").
DEMO_ARGS ?=
demo: examples $(TOOL_BIN)
	@set -e; if [ -z "$(EXAMPLE_BINS)" ]; then echo "demo: no examples/*.c yet" >&2; exit 1; fi; \
	for x in $(EXAMPLE_BINS); do \
	    echo "==> $$x"; "$$x" || { echo "demo: $$x failed (exit $$?)" >&2; exit 1; }; \
	done; echo "demo: all $(words $(EXAMPLE_BINS)) examples ran"
ifneq ($(TOOL_BIN),)
	@mkdir -p $(BUILD)/demo
	@echo "==> $(TOOL_BIN) train --model mlp --force --out $(BUILD)/demo/mlp.safetensors $(DEMO_ARGS)"
	@$(TOOL_BIN) train --model mlp --force --out $(BUILD)/demo/mlp.safetensors $(DEMO_ARGS)
endif

# ---- fuzzing ----------------------------------------------------------------------------
# `make fuzz` builds each libFuzzer target fuzz/fuzz_NAME.c as build-fuzz/fuzz/NAME, with
# clang (FUZZ_CC), ASan and UBSan and the whole library instrumented for coverage, in a
# build of its own (portable gemm, no OpenMP, no MPI: nothing uninstrumented). fuzz/run.sh NAME
# SECONDS runs one; docs/reliability.md says more. Warnings stay on but are not fatal here:
# the gcc build is the one that enforces them.
FUZZ_CC    ?= clang
FUZZ_SRCS  := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BINS  := $(FUZZ_SRCS:fuzz/fuzz_%.c=$(BUILD)/fuzz/%)
FUZZ_FLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
              -fno-omit-frame-pointer

.PHONY: fuzz fuzz-targets
fuzz:
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz: $(FUZZ_CC) not found (scripts/deps.sh installs clang and libclang-rt-14-dev)" >&2; exit 1; }
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=$(FUZZ_CC) SAN=0 BLAS=0 OPENMP=0 MPI=0 WERROR= \
	    CFLAGS='-O1 -g' SAN_FLAGS='$(FUZZ_FLAGS)' fuzz-targets
fuzz-targets: $(FUZZ_BINS)
$(FUZZ_BINS): $(BUILD)/fuzz/%: $(BUILD)/fuzz/fuzz_%.o $(LIB_A)
	$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS)
$(BUILD)/fuzz/cli $(BUILD)/fuzz/ckpt: $(CLI_OBJS)
$(BUILD)/fuzz/cli $(BUILD)/fuzz/ckpt: LDLIBS += $(LIB_A)
-include $(FUZZ_SRCS:%.c=$(BUILD)/%.d)

# ---- install ----------------------------------------------------------------------------

install: $(LIB_A) $(LIB_SO) $(PC_FILE) $(TOOL_BIN)
	install -d '$(DESTDIR)$(LIBDIR)' '$(DESTDIR)$(INCLUDEDIR)/brick' '$(DESTDIR)$(PCDIR)'
ifneq ($(TOOL_BIN),)
	install -d '$(DESTDIR)$(BINDIR)'
	install -m 755 $(TOOL_BIN) '$(DESTDIR)$(BINDIR)/brick'
	install -d '$(DESTDIR)$(DATADIR)/fashion-mnist-subset' '$(DESTDIR)$(DATADIR)/text'
	$(foreach f,$(DATA_FILES),install -m 644 $(f) '$(DESTDIR)$(DATADIR)/$(f:data/%=%)' &&) true
endif
	install -m 644 $(LIB_A) '$(DESTDIR)$(LIBDIR)/libbrick.a'
	install -m 755 $(LIB_SO) '$(DESTDIR)$(LIBDIR)/libbrick.so.$(VERSION)'
	ln -sf libbrick.so.$(VERSION) '$(DESTDIR)$(LIBDIR)/libbrick.so.$(VERSION_MAJOR)'
	ln -sf libbrick.so.$(VERSION_MAJOR) '$(DESTDIR)$(LIBDIR)/libbrick.so'
	install -m 644 include/brick.h '$(DESTDIR)$(INCLUDEDIR)/brick.h'
	install -m 644 $(PUBLIC_PARTS) '$(DESTDIR)$(INCLUDEDIR)/brick/'
	install -m 644 $(PC_FILE) '$(DESTDIR)$(PCDIR)/brick.pc'
	@# Refresh the loader cache for a real system install (not for staged or private prefixes).
	@if [ -z '$(DESTDIR)' ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null \
	    && { [ '$(LIBDIR)' = /usr/local/lib ] || [ '$(LIBDIR)' = /usr/lib ]; }; then ldconfig; fi

uninstall:
	rm -f '$(DESTDIR)$(BINDIR)/brick' '$(DESTDIR)$(LIBDIR)/libbrick.a' '$(DESTDIR)$(LIBDIR)/libbrick.so' \
	      '$(DESTDIR)$(LIBDIR)/libbrick.so.$(VERSION_MAJOR)' \
	      '$(DESTDIR)$(LIBDIR)/libbrick.so.$(VERSION)' \
	      '$(DESTDIR)$(INCLUDEDIR)/brick.h' '$(DESTDIR)$(PCDIR)/brick.pc' \
	      $(addprefix '$(DESTDIR)$(INCLUDEDIR)/,$(addsuffix ',$(PUBLIC_PARTS:include/%=%)))
	-rmdir '$(DESTDIR)$(INCLUDEDIR)/brick' 2>/dev/null
	rm -f $(foreach f,$(DATA_FILES),'$(DESTDIR)$(DATADIR)/$(f:data/%=%)')
	-rmdir '$(DESTDIR)$(DATADIR)/fashion-mnist-subset' '$(DESTDIR)$(DATADIR)/text' '$(DESTDIR)$(DATADIR)' 2>/dev/null

# ---- housekeeping -----------------------------------------------------------------------

clean:
	rm -rf $(sort build build-san build-fuzz build-clang $(BUILD))

config:
	@echo "CC      = $(CC)"
	@echo "BUILD   = $(BUILD)"
	@echo "SAN     = $(SAN)"
	@echo "OPENMP  = $(OPENMP)"
	@echo "BLAS    = $(BLAS)$(if $(filter 1,$(BLAS)), ($(BLAS_LIBS)))"
	@echo "MPI     = $(MPI)$(if $(filter 1,$(MPI)), ($(MPI_LIBS)))"
	@echo "CFLAGS  = $(ALL_CPPFLAGS) $(ALL_CFLAGS)"
	@echo "LDFLAGS = $(ALL_LDFLAGS)"
	@echo "LIBS    = $(LIBS)"
	@echo "VERSION = $(VERSION)"

help:
	@echo "brick $(VERSION) - targets (GNU make):"
	@echo "  all (default)  libbrick.a, libbrick.so, the brick CLI, tests, examples and benchmarks in $(BUILD)/"
	@echo "  lib            only the libraries (and brick.pc)"
	@echo "  tests          only the test binaries ($(BUILD)/tests/test_*)"
	@echo "  examples       only the examples ($(BUILD)/examples/*)"
	@echo "  tools          only the brick CLI ($(BUILD)/brick, from tools/*.c)"
	@echo "  bench          only the benchmarks in bench/ (built, not run: bench/compare.py runs them)"
	@echo "  test           build all, generate PyTorch parity data, run every test and example that"
	@echo "                 changed or failed (T=\"test_ops test_cli.sh\": only those; FRESH=1: all)"
	@echo "  valgrind       the same under valgrind (not with SAN=1)"
	@echo "  fuzz           the libFuzzer targets in build-fuzz/fuzz/ (clang; run: fuzz/run.sh)"
	@echo "  demo           run the examples, then train the MLP on Fashion-MNIST with the CLI"
	@echo "  install        install the libraries, brick.h, brick.pc and the brick CLI"
	@echo "                 to \$$DESTDIR\$$PREFIX (PREFIX=$(PREFIX))"
	@echo "  uninstall      remove what install put there"
	@echo "  config         show the detected configuration and flags"
	@echo "  clean          remove build/, build-san/, build-fuzz/ and build-clang/"
	@echo "  help           this list"
	@echo "options: SAN=1 (ASan+UBSan in build-san/), BLAS=auto|0|1, OPENMP=auto|0|1, MPI=auto|0|1,"
	@echo "         BUILD=dir, CC=..., CFLAGS=... (optimisation/debug only), WERROR="
	@echo "scripts: scripts/test.sh (everything CI runs), scripts/demo.sh, scripts/deps.sh"
