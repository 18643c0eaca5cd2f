# commerce-edge: nginx module + C sidecar workers.
#
#   make up          install missing packages, build, start the stack in .run/
#   make test        install missing packages, build, run every test
#   make test-asan   the same suite with AddressSanitizer/UBSan
#   make fuzz        libFuzzer targets of every parser, FUZZ_RUNS each
#   make bench       wrk benchmarks against the module and its peers
#   make bench-ab OLD=<rev>   the projector bench of OLD and HEAD, A/B
#   make soak        the stack under load and faults, then its promises
#                    checked (SOAK_SECONDS=300; SAN=1 or SOAK_SAN=1: under
#                    ASan/UBSan); docs/soak.md
#   make deb         Debian packages of the build in build/deb/
#   make workers-doc regenerate docs/workers.md from the workers' --help
#   make down        stop the stack

SHELL := /bin/bash
ROOT := $(CURDIR)

# SOAK_SAN=1 is SAN=1 for make soak.
ifeq ($(SOAK_SAN),1)
SAN := 1
endif

# SAN=1 builds everything with AddressSanitizer + UBSan into build/asan.
ifeq ($(SAN),1)
BUILD ?= $(ROOT)/build/asan
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
             -fno-sanitize-recover=undefined
else
BUILD ?= $(ROOT)/build
SAN_FLAGS :=
endif

NGX_SRC_DIST := /usr/share/nginx/src
NGX_BUILD := $(BUILD)/nginx
MODULE := $(BUILD)/ngx_http_commerce_module.so
MODULE_SRCS := $(wildcard ngx_commerce_module/*.c ngx_commerce_module/*.h \
                 common/*.c common/*.h)

# Debian's hardening flags, as Debian builds nginx and its modules
# (dpkg-buildflags, hardening=+all): the tests run what `make deb` packages.
# Not in a sanitizer build, where _FORTIFY_SOURCE would hide bugs from ASan.
ifneq ($(SAN),1)
DEB_BUILDFLAGS = $(shell DEB_BUILD_MAINT_OPTIONS=hardening=+all \
                   dpkg-buildflags --get $(1) 2>/dev/null)
HARDEN_CFLAGS := $(filter-out -g -O2 -ffile-prefix-map=%, \
                   $(call DEB_BUILDFLAGS,CFLAGS) \
                   $(call DEB_BUILDFLAGS,CPPFLAGS))
HARDEN_LDFLAGS := $(call DEB_BUILDFLAGS,LDFLAGS)
endif

CC := gcc
CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter \
          -D_GNU_SOURCE $(HARDEN_CFLAGS) $(SAN_FLAGS)
LDFLAGS := $(HARDEN_LDFLAGS) $(SAN_FLAGS)
NGX_CC_OPT := -O2 -g -Wextra -Wno-unused-parameter -Werror $(HARDEN_CFLAGS) \
              $(SAN_FLAGS)
NGX_LD_OPT := $(HARDEN_LDFLAGS) $(SAN_FLAGS)

# What was built with other flags is built again: $(FLAGS_FILE) holds them.
FLAGS_FILE := $(BUILD)/flags
FLAGS_NOW := $(CC) $(CFLAGS) $(LDFLAGS) nginx: $(NGX_CC_OPT) $(NGX_LD_OPT)
ifneq ($(file <$(FLAGS_FILE)),$(FLAGS_NOW))
$(shell mkdir -p $(BUILD) && printf '%s' '$(FLAGS_NOW)' >$(FLAGS_FILE))
endif

# Workers: every workers/<name>/ with a main.c becomes
# build/bin/commerce-<name>; workers/lib and a folder of library code only
# (workers/saga, the saga's decision core) do not.
WORKER_DIRS := $(notdir $(patsubst %/,%,$(dir $(wildcard workers/*/main.c))))
WORKER_BINS := $(addprefix $(BUILD)/bin/commerce-,$(WORKER_DIRS))
WLIB_SRCS := $(wildcard workers/lib/*.c)
WLIB_HDRS := $(wildcard workers/lib/*.h) $(wildcard common/*.h)
WLIB_OBJS := $(patsubst workers/lib/%.c,$(BUILD)/obj/wlib/%.o,$(WLIB_SRCS))
# common/: pure C compiled into the module (config) and every worker
COMMON_SRCS := $(wildcard common/*.c)
COMMON_OBJS := $(patsubst common/%.c,$(BUILD)/obj/common/%.o,$(COMMON_SRCS))
WORKER_LIBS := -lrdkafka -lhiredis -ljansson -lpq -lcrypto -lpthread -lm

# C unit tests (cmocka): t/unit/test_<name>.c, linked with the pure module
# sources listed in t/unit/<name>.deps (one path per line) if present.
UNIT_SRCS := $(wildcard t/unit/test_*.c)
UNIT_BINS := $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))

# clang builds the fuzz targets (the smoke run of `make test` too)
FUZZ_PKGS := clang libfuzzer-14-dev

# jose (the JOSE CLI) checks commerce-jwt's tokens in t/63-jwt-tool.t and
# made the JWT vectors (t/fixtures/jwt/make-vectors.sh)
DEBIAN_PKGS := $(FUZZ_PKGS) nginx nginx-dev libhiredis-dev librdkafka-dev libjansson-dev \
    libpq-dev libssl-dev redis-server redis-tools postgresql wrk \
    libcmocka-dev kcat perl gcc make libnginx-mod-http-lua \
    libnginx-mod-http-ndk lua-nginx-redis lua-nginx-kafka lua-resty-core \
    procps curl openssl dpkg-dev binutils help2man lintian systemd \
    prometheus jose

.PHONY: all build module workers unit deps up down reload test test-asan \
        test-unit test-t bench bench-ab deb clean workers-doc fuzz \
        fuzz-build fuzz-smoke soak

all: build

build: module workers unit

module: $(MODULE)

workers: $(WORKER_BINS)

unit: $(UNIT_BINS)

# t/01-workers-doc.t fails while docs/workers.md is not this output.
workers-doc: workers
	scripts/gen-workers-doc.sh $(BUILD)/bin > docs/workers.md.tmp
	mv docs/workers.md.tmp docs/workers.md

deps:
	@missing=$$(for p in $(DEBIAN_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	    $$sudo apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq \
	        --no-install-recommends $$missing; \
	fi

# nginx's configure needs a writable copy of Debian's nginx-dev tree; it is
# configured once with the distro binary's own flags (--with-compat).
$(NGX_BUILD)/objs/Makefile: config $(FLAGS_FILE)
	rm -rf $(NGX_BUILD) && mkdir -p $(BUILD) && \
	    cp -r $(NGX_SRC_DIST) $(NGX_BUILD)
	cd $(NGX_BUILD) && source ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --with-cc-opt="$(NGX_CC_OPT)" --with-ld-opt="$(NGX_LD_OPT)" \
	        --add-dynamic-module=$(ROOT) > configure.log 2>&1 \
	    || { tail -20 configure.log; exit 1; }

$(MODULE): $(NGX_BUILD)/objs/Makefile $(MODULE_SRCS)
	$(MAKE) -s -C $(NGX_BUILD) -f objs/Makefile modules
	cp $(NGX_BUILD)/objs/ngx_http_commerce_module.so $@.tmp && mv $@.tmp $@

# library objects are kept between builds (not make intermediates)
.SECONDARY: $(WLIB_OBJS) $(COMMON_OBJS)

$(BUILD)/obj/wlib/%.o: workers/lib/%.c $(WLIB_HDRS) $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icommon -Iworkers/lib -c $< -o $@

$(BUILD)/obj/common/%.o: common/%.c $(wildcard common/*.h) $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icommon -c $< -o $@

.SECONDEXPANSION:
$(BUILD)/bin/commerce-%: $$(wildcard workers/$$*/*.c workers/$$*/*.h) \
                         $(WLIB_OBJS) $(COMMON_OBJS) $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icommon -Iworkers/lib -Iworkers/$* \
	    $(wildcard workers/$*/*.c) $(WLIB_OBJS) $(COMMON_OBJS) -o $@ \
	    $(LDFLAGS) $(WORKER_LIBS)

$(BUILD)/unit/test_%: t/unit/test_%.c $$(shell cat t/unit/$$*.deps \
                      2>/dev/null) $(MODULE_SRCS) $(WLIB_HDRS) \
                      $(wildcard t/unit/*.h) $(wildcard workers/*/*.h) \
                      $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icommon -Ingx_commerce_module -Iworkers/lib $< \
	    $(shell cat t/unit/$*.deps 2>/dev/null) -o $@ $(LDFLAGS) \
	    -lcmocka $(WORKER_LIBS)

# Fuzz targets (clang's libFuzzer): t/fuzz/fuzz_<target>.c, linked with
# the sources in t/fuzz/<target>.deps, seeds in t/fuzz/corpus/<target>/;
# docs/fuzzing.md.  The nginx and module functions that the included
# module files name but that are not linked become stubs that abort
# (t/fuzz/unreachable.sh).  Always ASan + UBSan, whatever SAN says.
FUZZ_BUILD := $(ROOT)/build/fuzz
FUZZ_SRCS := $(wildcard t/fuzz/fuzz_*.c)
FUZZ_TARGETS := $(patsubst t/fuzz/fuzz_%.c,%,$(FUZZ_SRCS))
FUZZ_BINS := $(addprefix $(FUZZ_BUILD)/fuzz_,$(FUZZ_TARGETS))
FUZZ_RUNS ?= 10000000
FUZZ_JOBS ?= 1
FUZZ_CFLAGS := -std=gnu11 -g -O1 -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE
FUZZ_INCS := -I$(ROOT)/common -I$(ROOT)/ngx_commerce_module \
    -I$(ROOT)/workers/lib -I$(ROOT)/workers/projector -I$(ROOT)/t/fuzz \
    $(addprefix -I$(NGX_BUILD)/, src/core src/event src/event/modules \
    src/os/unix src/http src/http/modules src/http/v2 objs)
FUZZ_DEPS = $(shell cat t/fuzz/$(1).deps 2>/dev/null)

fuzz-build: $(FUZZ_BINS)

$(FUZZ_BUILD)/fuzz_%: t/fuzz/fuzz_%.c $$(call FUZZ_DEPS,$$*) $(MODULE_SRCS) \
                      $(WLIB_HDRS) $(wildcard t/fuzz/*.h) t/fuzz/unreachable.sh \
                      $(NGX_BUILD)/objs/Makefile
	rm -rf $(FUZZ_BUILD)/obj/$* && mkdir -p $(FUZZ_BUILD)/obj/$*
	cd $(FUZZ_BUILD)/obj/$* && clang $(FUZZ_CFLAGS) $(FUZZ_INCS) -c \
	    $(addprefix $(ROOT)/,$< $(call FUZZ_DEPS,$*))
	t/fuzz/unreachable.sh $(FUZZ_BUILD)/obj/$*/*.o \
	    > $(FUZZ_BUILD)/obj/$*/unreachable.c
	clang $(FUZZ_CFLAGS) $(FUZZ_BUILD)/obj/$*/*.o \
	    $(FUZZ_BUILD)/obj/$*/unreachable.c -o $@ $(WORKER_LIBS)

# every target FUZZ_RUNS executions (make fuzz FUZZ_RUNS=100000 for a
# quick look; FUZZ_TARGETS="sig json" for some; FUZZ_JOBS=2 in parallel)
fuzz: deps
	$(MAKE) fuzz-build
	t/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_RUNS) $(FUZZ_JOBS) $(FUZZ_TARGETS)

# in make test: every seed and reproducer replayed, then a short
# deterministic run (-seed=1) from the seeds, so that targets do not rot
fuzz-smoke: fuzz-build
	FUZZ_SMOKE=1 t/fuzz/run.sh $(FUZZ_BUILD) 10000 1 $(FUZZ_TARGETS)

test-unit: unit
	@set -e; for t in $(UNIT_BINS); do echo "# $$t"; $$t; done

test-t: module workers
	COMMERCE_BUILD=$(BUILD) prove -I t/lib $(PROVE_FLAGS) t/

test: deps
	$(MAKE) build
	$(MAKE) test-unit
	$(MAKE) fuzz-smoke
	$(MAKE) test-t

# The stock nginx binary is not instrumented, so the sanitizer runtime is
# preloaded into it; leak checks are off for nginx (it leaves its cycle
# pool to exit()), on for unit tests.
ASAN_PRELOAD = $(shell gcc -print-file-name=libasan.so) \
               $(shell gcc -print-file-name=libubsan.so)
test-asan: deps
	$(MAKE) SAN=1 build
	ASAN_OPTIONS=detect_leaks=1 $(MAKE) SAN=1 test-unit
	COMMERCE_LD_PRELOAD="$(ASAN_PRELOAD)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:log_path=$(BUILD)/asan/asan \
	UBSAN_OPTIONS=print_stacktrace=1:log_path=$(BUILD)/asan/ubsan \
	    $(MAKE) SAN=1 test-t
	@if ls $(BUILD)/asan/asan* $(BUILD)/asan/ubsan* >/dev/null 2>&1; then \
	    cat $(BUILD)/asan/asan* $(BUILD)/asan/ubsan* 2>/dev/null; \
	    echo "sanitizer reports found"; exit 1; fi

# The fault soak (scripts/soak/, docs/soak.md): SOAK_SECONDS (300) of
# mixed load on the whole stack while faults are injected, then the checks;
# SAN=1 runs it on the sanitizer build; each run in $(BUILD)/soak/<time>/.
soak: deps
	$(MAKE) build
	COMMERCE_BUILD=$(BUILD) SOAK_SAN=$(if $(filter 1,$(SAN)),1,0) \
	$(if $(filter 1,$(SAN)),COMMERCE_LD_PRELOAD="$(ASAN_PRELOAD)") \
	    perl scripts/soak/soak.pl

up: deps
	$(MAKE) build
	scripts/stack.sh up

down:
	scripts/stack.sh down

reload:
	scripts/stack.sh reload

# catalog reads, webhook ingress, orders, projector: each against its peer where
# the issue names one, results in build/bench/
bench: deps
	$(MAKE) build
	COMMERCE_BUILD=$(BUILD) scripts/bench/run.sh
	COMMERCE_BUILD=$(BUILD) scripts/bench/webhook/run.sh
	COMMERCE_BUILD=$(BUILD) scripts/bench/orders/run.sh
	COMMERCE_BUILD=$(BUILD) scripts/bench/projector/run.sh

# libnginx-mod-http-commerce and commerce-workers in build/deb/
# (scripts/deb.sh, files in packaging/debian/), checked by lintian
deb: deps
	$(MAKE) module workers
	COMMERCE_BUILD=$(BUILD) scripts/deb.sh
	lintian -I --fail-on error $(BUILD)/deb/*.deb

# the projector bench of two revisions, alternately in one run (each built
# in its own worktree): make bench-ab OLD=<rev> [NEW=<rev>, default HEAD;
# "." = this tree] [RUNS=3]; table in build/bench/ab.txt
bench-ab: deps
	@[ -n "$(OLD)" ] || { echo 'usage: make bench-ab OLD=<rev>' \
	    '[NEW=<rev>|.] [RUNS=3]' >&2; exit 2; }
	scripts/bench/ab.sh $(OLD) $(or $(NEW),HEAD) $(or $(RUNS),3)

clean:
	rm -rf build
