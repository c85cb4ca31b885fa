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

.PHONY: help setup host-packages hugepages build guests shim test bench clean

help:
	@echo "make setup   build vmm and the guests, install host tools, reserve huge pages, put dotnet-vmm on PATH"
	@echo "make test    setup, then run every test on real KVM"
	@echo "make bench   run the benchmarks (see README)"
	@echo "make guests  assemble the guest images into guests/bin"

setup: host-packages hugepages build guests shim

# Tools the tests use as outside witnesses: nasm (boot sectors assembled elsewhere) and socat (a QMP client nobody here wrote).
host-packages:
	@missing=""; for tool in nasm socat; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
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

test: setup
	$(DOTNET) test Vmm.sln -c $(CONFIGURATION) --no-build -nologo

bench: setup
	$(DOTNET) artifacts/bin/Vmm.Bench/$(CONFIG_LOWER)/vmm-bench.dll $(BENCH)

clean:
	rm -rf artifacts guests/bin
