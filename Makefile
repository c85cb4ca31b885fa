# vmm: build, set up the host, test, benchmark. `make help` lists the targets.
SHELL := /bin/bash
CONFIGURATION ?= Release
DOTNET ?= dotnet
REPO := $(abspath .)
CONFIG_LOWER := $(shell echo $(CONFIGURATION) | tr A-Z a-z)
VMM_DLL := $(REPO)/artifacts/bin/Vmm/$(CONFIG_LOWER)/dotnet-vmm.dll
SHIM := /usr/local/bin/dotnet-vmm
# 2 MiB huge pages reserved for the hugetlbfs RAM backend tests (a 512 MiB guest plus headroom).
HUGEPAGES ?= 600

.PHONY: help setup host-packages hugepages build guests shim test fuzz bench clean

help:
	@echo "make setup   build vmm and the guests, install host tools, reserve huge pages, put dotnet-vmm on PATH"
	@echo "make test    setup, then run every test: on KVM where /dev/kvm works (then the guest tests again on the software CPU), else on the software CPU"
	@echo "make fuzz    fuzz the migration's receive path and return path with afl++ (FUZZ_SECONDS each, default 60)"
	@echo "make bench   run the benchmarks (see README)"
	@echo "make guests  assemble the guest images into guests/bin"

setup: host-packages hugepages build guests shim

# Tools the tests use as outside witnesses: nasm (boot sectors assembled elsewhere), socat (a QMP client nobody here
# wrote) and QEMU (its TCG is the reference for the software CPU's semantics, and the figure its benchmarks beat).
HOST_TOOLS := nasm:nasm socat:socat qemu-system-x86_64:qemu-system-x86
host-packages:
	@missing=""; for pair in $(HOST_TOOLS); do tool=$${pair%%:*}; pkg=$${pair#*:}; command -v $$tool >/dev/null || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  (apt-get install -y -qq $$missing >/dev/null 2>&1 || (apt-get update -qq >/dev/null && apt-get install -y -qq $$missing >/dev/null)) \
	    || { echo "could not install$$missing (need root and apt)"; exit 1; }; \
	fi

hugepages:
	@have=$$(cat /proc/sys/vm/nr_hugepages); \
	if [ "$$have" -lt "$(HUGEPAGES)" ]; then \
	  if [ -w /proc/sys/vm/nr_hugepages ]; then echo $(HUGEPAGES) > /proc/sys/vm/nr_hugepages; \
	    echo "reserved $$(cat /proc/sys/vm/nr_hugepages) huge pages of 2 MiB"; \
	  else echo "note: only $$have huge pages reserved; hugetlbfs tests need $(HUGEPAGES) (run as root)"; fi; \
	fi

build:
	$(DOTNET) build Vmm.sln -c $(CONFIGURATION) -v quiet -nologo

guests: build
	$(DOTNET) artifacts/bin/Guests.Builder/$(CONFIG_LOWER)/guest-builder.dll guests/bin

# `dotnet vmm ...` runs the dotnet-vmm found on PATH: a two-line shim pointing at this checkout's build.
shim: build
	@printf '#!/bin/sh\nexec $(DOTNET) "%s" "$$@"\n' "$(VMM_DLL)" > $(SHIM).tmp && chmod +x $(SHIM).tmp && mv $(SHIM).tmp $(SHIM) \
	  && echo "dotnet vmm -> $(VMM_DLL)"

# Pass 1 runs everything on the accelerator `auto` picks (KVM where /dev/kvm works, else the software CPU). Where KVM
# works, pass 2 runs the guest tests again on the software CPU, so both accelerators are tested on a KVM host. Skipped
# tests are listed with their reasons (the console logger at normal verbosity prints them; passes are filtered out).
# -m:1 runs the test projects one after another: the QEMU witness and the migration timings must not share 2 cores.
TEST_LOGGER := --logger "console;verbosity=normal"
SHOW_SKIPS := grep --line-buffered -vE '^\s+Passed |^\s*$$'
test: setup
	@set -o pipefail; echo "== test pass 1: VMM_ACCEL=auto ($$( (exec 3<>/dev/kvm) 2>/dev/null && echo kvm || echo 'software CPU: /dev/kvm does not work here'))"; \
	VMM_ACCEL=auto $(DOTNET) test Vmm.sln -c $(CONFIGURATION) --no-build -nologo -m:1 $(TEST_LOGGER) | $(SHOW_SKIPS); status=$$?; \
	if (exec 3<>/dev/kvm) 2>/dev/null; then \
	  echo "== test pass 2: VMM_ACCEL=emulator (the guest tests again, on the software CPU)"; \
	  VMM_ACCEL=emulator $(DOTNET) test tests/Vmm.Tests/Vmm.Tests.csproj -c $(CONFIGURATION) --no-build -nologo $(TEST_LOGGER) | $(SHOW_SKIPS) || status=1; \
	else echo "== no test pass on KVM: /dev/kvm does not work on this host"; fi; \
	exit $$status

# Coverage-guided fuzzing of what a migration peer controls (issue 18): the destination's receive path and the source's
# return path (tests/Vmm.Fuzz), Vmm.Migration.dll instrumented by SharpFuzz, driven by afl++ from Debian for
# FUZZ_SECONDS each, starting from seeds the real stream writers produce and recordings of real migrations. An input
# that makes the migration allocate more than 128 MiB is a crash (AllocationGuard). Fails when afl saved any crash or hang; they stay in artifacts/fuzz.
FUZZ_SECONDS ?= 60
FUZZ_ENV := AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1
fuzz: build
	@command -v afl-fuzz >/dev/null || { apt-get update -qq && apt-get install -y -qq afl++ >/dev/null; }
	@export PATH="$$PATH:$$HOME/.dotnet/tools"; \
	command -v sharpfuzz >/dev/null || $(DOTNET) tool install --global SharpFuzz.CommandLine --version 2.3.0 >/dev/null; \
	rm -rf artifacts/fuzz && mkdir -p artifacts/fuzz \
	  && $(DOTNET) artifacts/bin/Vmm.Fuzz/$(CONFIG_LOWER)/vmm-fuzz.dll seeds artifacts/fuzz/seeds \
	  && cp -r artifacts/bin/Vmm.Fuzz/$(CONFIG_LOWER) artifacts/fuzz/bin \
	  && sharpfuzz artifacts/fuzz/bin/Vmm.Migration.dll >/dev/null || exit 1; \
	status=0; for target in destination return-path; do \
	  $(FUZZ_ENV) afl-fuzz -i artifacts/fuzz/seeds/$$target -o artifacts/fuzz/$$target -V $(FUZZ_SECONDS) -t 10000 -m none \
	    -- $(DOTNET) artifacts/fuzz/bin/vmm-fuzz.dll $$target > artifacts/fuzz/$$target.log 2>&1 || status=1; \
	  stats=artifacts/fuzz/$$target/default/fuzzer_stats; \
	  crashes=$$(find artifacts/fuzz/$$target/default/crashes artifacts/fuzz/$$target/default/hangs -type f -name 'id:*' 2>/dev/null | wc -l); \
	  echo "fuzz $$target: $$(awk '/^execs_done/ {print $$3}' $$stats 2>/dev/null) inputs in $(FUZZ_SECONDS) s, $$(awk '/^corpus_count/ {print $$3}' $$stats 2>/dev/null) in the corpus, $$crashes crashes or hangs"; \
	  [ -f $$stats ] && [ $$crashes -eq 0 ] || status=1; \
	done; exit $$status

bench: setup
	$(DOTNET) artifacts/bin/Vmm.Bench/$(CONFIG_LOWER)/vmm-bench.dll $(BENCH)

clean:
	rm -rf artifacts guests/bin
