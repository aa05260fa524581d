# gait — build, test, release validation.
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: build release test lint fmt bench

build:
	$(CARGO) build

release:
	$(CARGO) build --release

## The whole test suite (unit, integration, schema conformance, CLI).
test:
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	$(CARGO) bench
