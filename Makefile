# SPDX-License-Identifier: GPL-2.0
#
# Build layer: base + our series -> kernels, tests, initramfs -> QEMU runs.
# See README.md.  Everything generated lives in out/ (and the stripped base
# in $(LUO_CACHE)).

REPO        := $(abspath .)
OUT         := $(REPO)/out
# When make started: make test's time line counts the build from here.
MAKE_START  := $(shell date +%s)
LUO_CACHE   ?= $(HOME)/.cache/luo
export LUO_CACHE
SRC         := $(OUT)/src
JOBS        ?= $(shell nproc)
H           := $(REPO)/harness

# ccache keyed on paths relative to the repo, so fresh clones share hits.
export CCACHE_BASEDIR := $(REPO)
export CCACHE_DIR ?= $(HOME)/.cache/ccache
export KBUILD_BUILD_TIMESTAMP := Thu Jan  1 00:00:00 UTC 2026
export KBUILD_BUILD_USER := luo
export KBUILD_BUILD_HOST := luo
KMAKE        = $(MAKE) -s -C $(SRC) O=$(OUT)/build-$(1) CC="ccache gcc" -j$(JOBS)

.PHONY: all deps assemble kernel kernel-debug headers initramfs selftests test \
        lint series test-fast test-debug retest-fast retest-debug demo kernel-upstream bench bench-quick clean \
        distclean FORCE

all: kernel

# ---- prerequisites -------------------------------------------------------
deps: $(OUT)/.deps
$(OUT)/.deps: $(H)/install-deps.sh
	@$(H)/install-deps.sh
	@mkdir -p $(OUT) && touch $@

# ---- base and assembled tree ---------------------------------------------
assemble: deps
	@$(H)/assemble.sh "$$($(H)/base.sh)" $(SRC)

# ---- kernels ---------------------------------------------------------------
# $(1) = variant; the fragments are common + variant.
define kernel_rules
$(OUT)/build-$(1)/.config: $(H)/configs/common.config $(H)/configs/$(1).config | assemble
	@echo "  CONFIG  $(1)"
	@mkdir -p $(OUT)/build-$(1)
	@$(call KMAKE,$(1)) tinyconfig >/dev/null
	@$(SRC)/scripts/kconfig/merge_config.sh -m -O $(OUT)/build-$(1) \
		$(OUT)/build-$(1)/.config $$^ >/dev/null
	@$(call KMAKE,$(1)) olddefconfig >/dev/null
	@$(H)/check-config.sh $(OUT)/build-$(1)/.config $$^

kernel-$(1)-build: assemble $(OUT)/build-$(1)/.config
	@echo "  KERNEL  $(1)"
	@$(call KMAKE,$(1)) bzImage
.PHONY: kernel-$(1)-build
endef
$(eval $(call kernel_rules,fast))
$(eval $(call kernel_rules,debug))

kernel: kernel-fast-build
	@cp -u $(OUT)/build-fast/arch/x86/boot/bzImage $(OUT)/bzImage
	@echo "  OUT     out/bzImage"
kernel-debug: kernel-debug-build
	@cp -u $(OUT)/build-debug/arch/x86/boot/bzImage $(OUT)/bzImage-debug
	@echo "  OUT     out/bzImage-debug"

# ---- test programs and initramfs -------------------------------------------
# Static test binaries for the guest; the loop's own tools come first.
# Installed aside and copied by content: a header that did not change keeps
# its time stamp, so the test programs are not rebuilt for a kernel change.
headers: kernel-fast-build
	@$(call KMAKE,fast) headers_install INSTALL_HDR_PATH=$(OUT)/headers.new
	@rsync -rc --delete $(OUT)/headers.new/ $(OUT)/headers/

selftests: headers
	@$(H)/build-tests.sh $(SRC) $(OUT)/headers $(OUT)/initramfs/root

initramfs: selftests
	@$(H)/mkinitramfs.sh $(OUT)/initramfs/root $(OUT)/initramfs-base.cpio

$(OUT)/initramfs-%.cpio: FORCE
	@$(H)/mkinitramfs.sh --kernel $(OUT)/$(if $(filter debug,$*),bzImage-debug,bzImage) \
		$(OUT)/initramfs-base.cpio $@

# ---- static checks: checkpatch, kernel-doc, W=1 (and sparse if usable) ----
lint: kernel
	@$(H)/lint.sh $(SRC) $(OUT)/build-fast

# The series a maintainer would apply: out/series/*.patch, each checked
# with checkpatch and built on its own (see harness/series.py).
series: kernel
	@$(H)/series.py

# make test counts make lint's and make series' checks with the tests.
$(OUT)/static.results: kernel FORCE
	@$(H)/static-checks.sh $(SRC) $(OUT)/build-fast $@

# ---- running -----------------------------------------------------------------
# make test: the whole suite on both kernels.  T="a b" picks tests.
# The runner's own verdict checks run first, in a blink.
# run-suite.py packs each test's initramfs from out/initramfs/root.
test: kernel kernel-debug initramfs $(OUT)/bzImage-demo-b \
      $(if $(T),,$(OUT)/static.results)
	@$(H)/selftest-runner.py
	@$(H)/run-suite.py $(if $(T),,--results $(OUT)/static.results) \
		--since $(MAKE_START) \
		--variant fast --variant debug --variant demo $(T)

test-fast: kernel initramfs $(OUT)/initramfs-fast.cpio
	@$(H)/selftest-runner.py
	@$(H)/run-suite.py --since $(MAKE_START) --variant fast $(T)

test-debug: kernel-debug initramfs
	@$(H)/selftest-runner.py
	@$(H)/run-suite.py --since $(MAKE_START) --variant debug $(T)

# Only test programs changed: rebuild them and rerun against the kernels
# already built (out/bzImage, out/bzImage-debug).
retest-fast retest-debug: retest-%: assemble
	@$(H)/build-tests.sh $(SRC) $(OUT)/headers $(OUT)/initramfs/root
	@$(H)/run-suite.py --variant $* $(T)

demo: kernel initramfs $(OUT)/bzImage-demo-b
	@$(H)/demo.sh $(if $(HUGETLB),--hugetlb)$(if $(DEVICE),--device)

# The demo's kernel B: the fast kernel relinked, in a copy of its build
# tree, as build #2 by "demo-b", so that its version string shows the
# update happened.  run-suite.py puts it in the demo's initramfs as the
# kexec target.
$(OUT)/bzImage-demo-b: $(OUT)/bzImage
	@echo "  KERNEL  demo-b"
	@rm -rf $(OUT)/build-demo-b
	@cp -a $(OUT)/build-fast $(OUT)/build-demo-b
	@$(call KMAKE,demo-b) KBUILD_BUILD_VERSION=2 KBUILD_BUILD_USER=demo-b bzImage
	@cp $(OUT)/build-demo-b/arch/x86/boot/bzImage $@

# ---- benchmark: ours against the unmodified 7.2.11 with its upstream LUO ----
# The yardstick is built from its own unmodified tree with the same fragments
# (its sources are never read, only built).
UPSTREAM_BUILD := $(OUT)/build-upstream
UMAKE = $(MAKE) -s -C "$$($(H)/base.sh --upstream)" O=$(UPSTREAM_BUILD) \
	CC="ccache gcc" -j$(JOBS)
$(UPSTREAM_BUILD)/.config: $(H)/configs/common.config $(H)/configs/fast.config \
			  $(H)/configs/upstream.config | deps
	@echo "  CONFIG  upstream"
	@mkdir -p $(UPSTREAM_BUILD)
	@$(UMAKE) tinyconfig >/dev/null
	@$(SRC)/scripts/kconfig/merge_config.sh -m -O $(UPSTREAM_BUILD) \
		$(UPSTREAM_BUILD)/.config $^ >/dev/null
	@$(UMAKE) olddefconfig >/dev/null
	@$(H)/check-config.sh $@ $(H)/configs/fast.config $(H)/configs/upstream.config
	@for o in KEXEC_HANDOVER LIVEUPDATE LIVEUPDATE_MEMFD; do \
		grep -qx "CONFIG_$$o=y" $@ || { echo "upstream: no CONFIG_$$o"; exit 1; }; done

kernel-upstream: $(UPSTREAM_BUILD)/.config
	@echo "  KERNEL  upstream"
	@$(UMAKE) bzImage
	@cp -u $(UPSTREAM_BUILD)/arch/x86/boot/bzImage $(OUT)/bzImage-upstream
	@echo "  OUT     out/bzImage-upstream"

$(OUT)/initramfs-upstream.cpio: FORCE
	@$(H)/mkinitramfs.sh --kernel $(OUT)/bzImage-upstream \
		$(OUT)/initramfs-base.cpio $@

# make bench: the full run (an hour or more under TCG); make bench-quick: a
# few minutes.  Results in out/bench/.
BENCH_DEPS = kernel kernel-upstream initramfs $(OUT)/initramfs-fast.cpio \
	     $(OUT)/initramfs-upstream.cpio
bench: $(BENCH_DEPS)
	@$(H)/bench.py
bench-quick: $(BENCH_DEPS)
	@$(H)/bench.py --quick

clean:
	rm -rf $(OUT)/build-* $(OUT)/initramfs* $(OUT)/logs $(OUT)/bzImage*
distclean:
	rm -rf $(OUT)
FORCE:
