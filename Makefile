# modelapi for C and C++ projects (GNU make): build and install the
# library as such projects expect it.
#
#   make                          build the library (cargo build --release)
#   make install [PREFIX=/usr/local] [DESTDIR=]
#                                 build it if needed, and lay out
#       include/modelapi.h, include/modelapi.hpp
#       lib/libmodelapi.so.X.Y.Z  (SONAME libmodelapi.so.ABI), and the
#       lib/libmodelapi.so.ABI and lib/libmodelapi.so symlinks
#       lib/libmodelapi.a
#       lib/pkgconfig/modelapi.pc, lib/pkgconfig/modelapi-static.pc
#       lib/cmake/modelapi/modelapiConfig.cmake (and ConfigVersion)
#   make uninstall [PREFIX=] [DESTDIR=]
#   make install PROFILE=debug    the same from cargo's debug build
#   make test                     tests/run-all.sh: install what the tests
#                                 need, then run every test, none optional
#
# ABI is the ABI version: the major version, or 0.<minor> for 0.x (a 0.x
# minor release may change the ABI; a patch release never does). See the
# README, "Linking".

PROFILE    ?= release
TARGET_DIR ?= target
PREFIX     ?= /usr/local
DESTDIR    ?=

ROOT    := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' $(ROOT)/Cargo.toml | head -n 1)
MAJOR   := $(word 1,$(subst ., ,$(VERSION)))
MINOR   := $(word 2,$(subst ., ,$(VERSION)))
ABI     := $(if $(filter 0,$(MAJOR)),0.$(MINOR),$(MAJOR))
# What the static library needs besides itself (from
# `cargo rustc --lib -- --print native-static-libs`).
NATIVE_STATIC_LIBS := $(shell cat $(ROOT)/packaging/native-static-libs)

ifeq ($(PROFILE),release)
CARGO_PROFILE := --release
else ifeq ($(PROFILE),debug)
CARGO_PROFILE :=
else
CARGO_PROFILE := --profile $(PROFILE)
endif
LIBDIR := $(abspath $(TARGET_DIR))/$(PROFILE)
DEST   := $(DESTDIR)$(PREFIX)

.PHONY: all build install uninstall test

all: build

build:
	cd $(ROOT) && cargo build --lib $(CARGO_PROFILE) --target-dir $(abspath $(TARGET_DIR))

define fill_in
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' -e 's|@SOVERSION@|$(ABI)|g' \
	    -e 's|@LIBS_PRIVATE@|$(NATIVE_STATIC_LIBS)|g' \
	    -e 's|@LIBS_PRIVATE_CMAKE@|$(subst $() ,;,$(NATIVE_STATIC_LIBS))|g' $(1) > $(2)
endef

install: build
	@test -n "$(VERSION)" || { echo "error: no version in Cargo.toml" >&2; exit 1; }
	install -d $(DEST)/include $(DEST)/lib/pkgconfig $(DEST)/lib/cmake/modelapi
	install -m 644 $(ROOT)/include/modelapi.h $(ROOT)/include/modelapi.hpp $(DEST)/include/
	install -m 644 $(LIBDIR)/libmodelapi.a $(DEST)/lib/libmodelapi.a
	install -m 755 $(LIBDIR)/libmodelapi.so $(DEST)/lib/libmodelapi.so.$(VERSION)
	ln -sf libmodelapi.so.$(VERSION) $(DEST)/lib/libmodelapi.so.$(ABI)
	ln -sf libmodelapi.so.$(ABI) $(DEST)/lib/libmodelapi.so
	$(call fill_in,$(ROOT)/packaging/modelapi.pc.in,$(DEST)/lib/pkgconfig/modelapi.pc)
	$(call fill_in,$(ROOT)/packaging/modelapi-static.pc.in,$(DEST)/lib/pkgconfig/modelapi-static.pc)
	$(call fill_in,$(ROOT)/packaging/modelapiConfig.cmake.in,$(DEST)/lib/cmake/modelapi/modelapiConfig.cmake)
	$(call fill_in,$(ROOT)/packaging/modelapiConfigVersion.cmake.in,$(DEST)/lib/cmake/modelapi/modelapiConfigVersion.cmake)

uninstall:
	rm -f $(DEST)/include/modelapi.h $(DEST)/include/modelapi.hpp \
	      $(DEST)/lib/libmodelapi.a $(DEST)/lib/libmodelapi.so \
	      $(DEST)/lib/libmodelapi.so.$(ABI) $(DEST)/lib/libmodelapi.so.$(VERSION) \
	      $(DEST)/lib/pkgconfig/modelapi.pc $(DEST)/lib/pkgconfig/modelapi-static.pc \
	      $(DEST)/lib/cmake/modelapi/modelapiConfig.cmake \
	      $(DEST)/lib/cmake/modelapi/modelapiConfigVersion.cmake
	-rmdir $(DEST)/lib/cmake/modelapi 2>/dev/null

# Every test, none of them optional, after installing what they need: the
# README's test command, tests/run-all.sh (which needs no make).
test:
	cd $(ROOT) && bash tests/run-all.sh
