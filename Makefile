# machine: build, image, tests. `make` builds bin/machine and the guest agents it packs.
GO        ?= go
ARCHES    ?= amd64 arm64
IMAGE_ARCHES ?= $(ARCHES)
# IMAGE_REF is the registry reference a release pulls on first start when no image is built
# (empty: development builds say how to get one).
IMAGE_REF ?=
# VERSION names the build in `machine version`: a release tag, or the commit.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
HOST_OS   := $(shell $(GO) env GOOS)
# On macOS bin/machine is built with cgo (the vz driver) and signed with the virtualization
# entitlement, ad hoc unless CODESIGN_IDENTITY names one; elsewhere everything is CGO_ENABLED=0.
ifeq ($(HOST_OS),darwin)
MACHINE_CGO ?= 1
else
MACHINE_CGO ?= 0
endif
export CGO_ENABLED ?= $(MACHINE_CGO)
CODESIGN_IDENTITY ?= -

.PHONY: all machine agents image test e2e bench faults panics check codesign release clean deps quickstart ci fuzz

all: machine agents

machine:
	CGO_ENABLED=$(MACHINE_CGO) $(GO) build -trimpath -ldflags '-X main.defaultImageRef=$(IMAGE_REF) -X github.com/machine-run/machine/internal/buildinfo.version=$(VERSION)' -o bin/machine ./cmd/machine
ifeq ($(HOST_OS),darwin)
	codesign --force --sign "$(CODESIGN_IDENTITY)" --entitlements hostagent/driver/vz/entitlements.plist bin/machine
endif

agents: $(addprefix bin/machine-guestagent-,$(ARCHES))

bin/machine-guestagent-%: FORCE
	CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -trimpath -ldflags='-s -w' -o $@ ./cmd/machine-guestagent

FORCE:

# Build (or reuse from the cache) the guest image for each architecture.
image: all
	for a in $(IMAGE_ARCHES); do bin/machine image build --arch $$a --agent bin/machine-guestagent-$$a || exit 1; done

# Unit tests: never boot a VM.
test:
	$(GO) test ./...

# End-to-end tests: boot real guests under QEMU and drive them with the docker CLI.
e2e: image
	MACHINE_BIN=$(CURDIR)/bin/machine $(GO) test -tags e2e -count=1 -timeout 80m -v ./test/

# The fault suite alone (also part of e2e): channel cut, host sleep, host agent killed,
# power loss (MACHINE_FAULT_CYCLES boots).
faults: image
	MACHINE_BIN=$(CURDIR)/bin/machine $(GO) test -tags e2e -count=1 -timeout 30m -v -run TestFaults ./test/

# Benchmarks: the forwarder and port discovery without a VM, then one machine under QEMU that
# prints start-to-ready over five boots with phases, idle cost, publish latency, forwarding
# paths (ours vs the raw guest channel vs QEMU's hostfwd), docker load throughput, memory
# given back after a container frees 1 GiB, the home share vs the machine's disk, and idle
# CPU awake vs auto-paused with the first request's latency on a paused machine, with ratios.
# How often the guest kernel panics under emulation: PANIC_BOOTS boots (issue 11, point 10).
# PANIC_DROP="word ..." takes kernel words off the image's command line and PANIC_ADD="word
# ..." puts words on it, to measure without a mitigation (PANIC_ADD=maxcpus=2: the kernel
# boots on both CPUs).
PANIC_BOOTS ?= 100
panics: image
	MACHINE_BIN=$(CURDIR)/bin/machine MACHINE_PANIC_BOOTS=$(PANIC_BOOTS) MACHINE_PANIC_DROP="$(PANIC_DROP)" MACHINE_PANIC_ADD="$(PANIC_ADD)" \
		$(GO) test -tags e2e -count=1 -timeout 300m -v -run 'TestBootPanics$$' ./test/

bench: image
	$(GO) test -run '^$$' -bench . -benchtime 2s ./portforward/... ./guestagent/...
	MACHINE_BIN=$(CURDIR)/bin/machine $(GO) test -tags e2e -count=1 -timeout 30m -run '^$$' -bench BenchmarkMachine -benchtime 1x ./test/

# Static checks for every host OS (darwin with cgo is type-checked without an SDK).
check:
	@# darwincheck's parseerror fixture is not Go on purpose.
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './tools/darwincheck/testdata/parseerror/*')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	for os in linux windows darwin; do CGO_ENABLED=0 GOOS=$$os $(GO) vet ./... || exit 1; done
	CGO_ENABLED=0 GOOS=windows GOARCH=arm64 $(GO) build ./...
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 $(GO) build ./...
	CGO_ENABLED=0 GOOS=darwin $(GO) build ./...
	CGO_ENABLED=0 $(GO) run ./tools/darwincheck
ifeq ($(HOST_OS),darwin)
	CGO_ENABLED=1 $(GO) vet ./...
endif

# macOS: the vz driver needs the virtualization entitlement; `make machine` signs already.
codesign: machine

# Cross-build every binary this host can build into dist/ and say which need a Mac.
release:
	GO=$(GO) IMAGE_REF=$(IMAGE_REF) scripts/release.sh

clean:
	rm -rf bin dist

# Install the host prerequisites (apt) for building images, booting machines and testing.
deps:
	scripts/install-deps.sh

# Quick start: build, boot the default machine, run a container in it.
quickstart:
	scripts/quickstart.sh

# Everything CI runs: prerequisites, static checks, unit tests, end-to-end tests.
ci: deps
	$(MAKE) check
	$(MAKE) test
	$(MAKE) fuzz
	$(MAKE) e2e

# Fuzz each decoder the host or guest applies to the other side's bytes, for FUZZTIME each
# (the checked-in corpora under testdata/fuzz also run in every `make test`). A count, not a
# duration: Go 1.26's coordinator can report its own -fuzztime deadline as a failure
# ("context deadline exceeded", no failing input; go.dev/issue/75804, fixed in 1.27), which
# failed a CI run.
FUZZTIME ?= 150000x
FUZZ_TARGETS = ./guestagent/api/mux:FuzzStreamHeader ./guestagent/api:FuzzReadFrame \
	./guestagent/api:FuzzReadDatagram ./guestagent/api:FuzzDecodeEvent \
	./guestagent/api:FuzzDecodeExecRequest ./guestagent/boot:FuzzDetectDisk
fuzz:
	for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done
