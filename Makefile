# ceti — see README.md. Every target installs what it needs (scripts/deps.sh is idempotent).
PREFIX ?= /usr/local
SWIFT ?= swift
VENV := .venv
PYTEST := $(VENV)/bin/pytest

.PHONY: all deps build release test unit integration bench install demo clean

all: build

deps:
	bash scripts/deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Unit tests (Swift Testing), then integration tests (pytest) against a real SeaweedFS on
# loopback that scripts/with-s3.sh starts and always stops. The build fails on a compiler
# warning in Sources/ (scripts/no-warnings.sh; only recompiled files report theirs).
test: deps
	bash scripts/no-warnings.sh $(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	CETI_BIN=$(CURDIR)/.build/debug/ceti bash scripts/with-s3.sh $(PYTEST) -q -p no:cacheprovider Tests/integration

unit: deps
	$(SWIFT) test

integration: build
	CETI_BIN=$(CURDIR)/.build/debug/ceti bash scripts/with-s3.sh $(PYTEST) -q -p no:cacheprovider Tests/integration $(ARGS)

# S3 upload (SeaweedFS via with-s3.sh; ARGS), then the SFTP pull against OpenSSH sftp/scp (needs
# root: starts and always stops its own sshd via scripts/tag-sim.sh; WARGS, plus --quick from ARGS),
# then compress against flac/gzip/pigz (CARGS), then general_offload against cp + sha256sum (OARGS),
# then ingest of two simulated tags against sftp → flac → gzip → aws s3 sync (root; IARGS).
bench: release
	CETI_BIN=$(CURDIR)/.build/release/ceti CETI_TEST_BUCKETS="ceti-bench" bash scripts/with-s3.sh $(VENV)/bin/python bench/s3upload_bench.py $(ARGS)
	CETI_BIN=$(CURDIR)/.build/release/ceti $(VENV)/bin/python bench/whaletag_bench.py $(filter --quick,$(ARGS)) $(WARGS)
	CETI_BIN=$(CURDIR)/.build/release/ceti $(VENV)/bin/python bench/compress_bench.py $(filter --quick,$(ARGS)) $(CARGS)
	CETI_BIN=$(CURDIR)/.build/release/ceti $(VENV)/bin/python bench/offload_bench.py $(filter --quick,$(ARGS)) $(OARGS)
	CETI_BIN=$(CURDIR)/.build/release/ceti CETI_TEST_BUCKETS="ceti-bench" bash scripts/with-s3.sh $(VENV)/bin/python bench/ingest_bench.py $(filter --quick,$(ARGS)) $(IARGS)

install: release
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 .build/release/ceti $(DESTDIR)$(PREFIX)/bin/ceti

demo: release
	CETI_BIN=$(CURDIR)/.build/release/ceti CETI_TEST_BUCKETS="ceti-demo" bash scripts/with-s3.sh bash scripts/demo.sh

clean:
	rm -rf .build .tmp
