# ceti — see README.md. Every target installs what it needs (scripts/deps.sh is idempotent).
PREFIX ?= /usr/local
SWIFT ?= swift
VENV := .venv
PYTEST := $(VENV)/bin/pytest

.PHONY: all deps build release test unit integration bench install demo clean format format-check

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
test: deps format-check
	bash scripts/no-warnings.sh $(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	CETI_BIN=$(CURDIR)/.build/debug/ceti bash scripts/with-s3.sh $(PYTEST) -q -p no:cacheprovider Tests/integration

# Swift sources follow .swift-format (the toolchain's swift-format); `make format` rewrites them.
format-check:
	$(SWIFT) format lint --strict -r Sources Tests/CetiKitTests Package.swift

format:
	$(SWIFT) format -i -r Sources Tests/CetiKitTests Package.swift

unit: deps
	$(SWIFT) test

integration: build
	CETI_BIN=$(CURDIR)/.build/debug/ceti bash scripts/with-s3.sh $(PYTEST) -q -p no:cacheprovider Tests/integration $(ARGS)

# S3 upload (SeaweedFS via with-s3.sh; ARGS), then the SFTP pull against OpenSSH sftp/scp (needs
# root: starts and always stops its own sshd via scripts/tag-sim.sh; WARGS, plus --quick from ARGS),
# then compress against flac/gzip/pigz (CARGS), then general_offload against cp + sha256sum (OARGS),
# then ingest of two simulated tags against sftp → flac → gzip → aws s3 sync (root; IARGS), then the
# emulated boat: ingest over capped tag links and a capped, resetting uplink (root; BARGS, e.g. --record).
bench: release
	CETI_BIN=$(CURDIR)/.build/release/ceti CETI_TEST_BUCKETS="ceti-bench" bash scripts/with-s3.sh $(VENV)/bin/python bench/s3upload_bench.py $(ARGS)
	CETI_BIN=$(CURDIR)/.build/release/ceti $(VENV)/bin/python bench/whaletag_bench.py $(filter --quick,$(ARGS)) $(WARGS)
	CETI_BIN=$(CURDIR)/.build/release/ceti $(VENV)/bin/python bench/compress_bench.py $(filter --quick,$(ARGS)) $(CARGS)
	CETI_BIN=$(CURDIR)/.build/release/ceti $(VENV)/bin/python bench/offload_bench.py $(filter --quick,$(ARGS)) $(OARGS)
	CETI_BIN=$(CURDIR)/.build/release/ceti CETI_TEST_BUCKETS="ceti-bench" bash scripts/with-s3.sh $(VENV)/bin/python bench/ingest_bench.py $(filter --quick,$(ARGS)) $(IARGS)
	CETI_BIN=$(CURDIR)/.build/release/ceti CETI_TEST_BUCKETS="ceti-bench" bash scripts/with-s3.sh $(VENV)/bin/python bench/boat_bench.py $(filter --quick,$(ARGS)) $(BARGS)
	CETI_BIN=$(CURDIR)/.build/release/ceti CETI_TEST_BUCKETS="ceti-bench" bash scripts/with-s3.sh $(VENV)/bin/python bench/restore_bench.py $(filter --quick,$(ARGS)) $(RARGS)
	CETI_BIN=$(CURDIR)/.build/release/ceti CETI_TEST_BUCKETS="ceti-bench" bash scripts/with-s3.sh $(VENV)/bin/python bench/qc_bench.py $(filter --quick,$(ARGS)) $(QARGS)

# The binary, its man pages (ceti(1) and one per subcommand: man ceti-ingest) made by
# swift-argument-parser's generate-manual plugin, and bash/zsh/fish completions made by the binary
# itself, all from the same option declarations. PREFIX and DESTDIR are honoured. CETI_BIN and
# GENERATE_MANUAL (a command writing NAME.SUB.1 pages into MANPAGES) let the tests use a debug build.
CETI_BIN ?= .build/release/ceti
MANPAGES ?= .build/man
MANDIR ?= $(PREFIX)/share/man
# ceti-watch.service: the user `ceti watch` runs as, and where systemd finds units of $(PREFIX).
CETI_USER ?= ceti
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
GENERATE_MANUAL ?= $(SWIFT) package plugin --allow-writing-to-directory $(MANPAGES) generate-manual --multi-page -o $(MANPAGES)
install: release
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0755 $(CETI_BIN) $(DESTDIR)$(PREFIX)/bin/ceti
	rm -rf $(MANPAGES) && mkdir -p $(MANPAGES)
	$(GENERATE_MANUAL)
	for f in $(MANPAGES)/ceti*.1; do \
		page=$$(basename $$f .1 | tr . -).1; \
		case $$page in ceti-help.1) continue;; esac; \
		title=$$(echo $${page%.1} | tr a-z A-Z); \
		sed "s/^\.Dt .* 1$$/.Dt $$title 1/" $$f > $(MANPAGES)/$$page.tmp && \
		install -m 0644 $(MANPAGES)/$$page.tmp $(DESTDIR)$(MANDIR)/man1/$$page && rm -f $(MANPAGES)/$$page.tmp || exit 1; \
	done
	$(CETI_BIN) --generate-completion-script bash > $(MANPAGES)/ceti.bash
	$(CETI_BIN) --generate-completion-script zsh > $(MANPAGES)/_ceti
	$(CETI_BIN) --generate-completion-script fish > $(MANPAGES)/ceti.fish
	install -m 0644 $(MANPAGES)/ceti.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/ceti
	install -m 0644 $(MANPAGES)/_ceti $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_ceti
	install -m 0644 $(MANPAGES)/ceti.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/ceti.fish
	install -d $(DESTDIR)$(SYSTEMD_UNIT_DIR)
	sed 's|@BINDIR@|$(PREFIX)/bin|; s|@USER@|$(CETI_USER)|' scripts/ceti-watch.service.in > $(MANPAGES)/ceti-watch.service
	install -m 0644 $(MANPAGES)/ceti-watch.service $(DESTDIR)$(SYSTEMD_UNIT_DIR)/ceti-watch.service

demo: release
	CETI_BIN=$(CURDIR)/.build/release/ceti CETI_TEST_BUCKETS="ceti-demo" bash scripts/with-s3.sh bash scripts/demo.sh

clean:
	rm -rf .build .tmp
