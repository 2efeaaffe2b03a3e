# Shaobing (哨兵): `make demo` and `make test` do all the set-up on a fresh
# Debian machine. See README.md.

CARGO     ?= cargo
APT_PKGS  := libpcap-dev clickhouse-server curl tcpdump tcpreplay iproute2 pkg-config \
             python3 python3-venv zookeeper \
             chromium chromium-driver fonts-wqy-microhei gobgpd
SHELL     := /bin/bash

.PHONY: all deps build test lint fmt demo stop bench pcaps corpus clean

all: build

## deps: install the system packages the project needs (Debian, apt-get)
deps:
	@scripts/deps.sh $(APT_PKGS)
	@scripts/chdb.sh

## build: release build of every binary
build: deps
	$(CARGO) build --release --workspace --bins

## test: the whole test suite, end-to-end tests against a real ClickHouse included;
## the collector's ClickHouse tests run twice: on 18.16 and on 26.9 (scripts/chdb.sh)
test: deps
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast
	@echo "== the collector's ClickHouse tests again, against ClickHouse 26.9 (chdb-core)"
	SHAOBING_CLICKHOUSE=26.9 $(CARGO) test -p shaobing-testkit -p shaobing-collector --tests \
		--no-fail-fast -- --test-threads=2

## corpus: replay every capture of ../shared/pcaps and ../shared/pcaps-suricata-verify
## (when present): no panic, no hang (scripts/corpus.sh); CI runs it after `make test`
CORPUS    ?= ../shared/pcaps ../shared/pcaps-suricata-verify
corpus:
	$(CARGO) build --workspace --bins
	@scripts/corpus.sh $(CORPUS)

## lint: formatting and clippy, as CI runs them
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## demo: private ClickHouse + collector under ./var, replay pcaps/, show what was stored
demo: build
	@scripts/demo.sh start

## stop: stop what `make demo` started
stop:
	@scripts/demo.sh stop

## pcaps: regenerate the project's own captures into pcaps/
pcaps:
	$(CARGO) run --release -p shaobing-pcapgen -- --out pcaps

## fuzz: every fuzz target (fuzz/) for 10 million executions (FUZZ_RUNS)
fuzz: deps
	@scripts/fuzz.sh

## fuzz-smoke: every fuzz target for a few seconds (FUZZ_SECONDS, CI)
fuzz-smoke: deps
	@scripts/fuzz.sh --smoke

## bench: long benchmarks (not part of `make test`); figures go in docs/BENCHMARKS.md
bench: build
	@scripts/bench.sh

clean: stop
	rm -rf var
	$(CARGO) clean
