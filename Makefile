# gait — build, test, release validation.
#
# Release needs (hardening contract): make test, make test-hardening-acceptance,
# bash scripts/test_session_soak.sh, make test-chaos, make bench-budgets.
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: build release demo test lint fmt bench test-hardening-acceptance test-chaos \
        bench-budgets soak soak-proxy test-interop validate-deploy compose-local ci-release-quick ci-release-report

build:
	$(CARGO) build

release:
	$(CARGO) build --release --bin gait --example demo_upstream --example bare_proxy

## The main job: gait mcp serve on the embedded dev config in front of a demo MCP upstream.
demo:
	bash scripts/demo.sh

## The whole test suite: unit, integration (real rmcp peers on 127.0.0.1), schema conformance, CLI.
test:
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	$(CARGO) bench

## Every line of the hardening contract against a live gait in front of a real upstream.
test-hardening-acceptance:
	bash scripts/test_hardening_acceptance.sh

## Proxy and session chaos (kill -9, hangs, slowloris, malformed floods, full disks).
test-chaos:
	bash chaos/run.sh

## Criterion benches + loopback load runs (direct / nginx / gait), checked against perf/budgets.json.
bench-budgets:
	python3 scripts/check_budgets.py

soak:
	bash scripts/test_session_soak.sh

soak-proxy:
	bash scripts/soak_proxy.sh

test-interop:
	bash scripts/test_mcp_interop.sh

validate-deploy:
	bash scripts/validate_deploy.sh

compose-local:
	bash scripts/run_compose_local.sh

## Quick forms of the release validation, as CI runs them (keeps CI well under 60 minutes).
## Gating: every command must pass. Quick form vs full form:
## - chaos/run.sh with CHAOS_QUICK=1 CHAOS_KILLS=4 (~2-3 min): every proxy scenario and the
##   session chaos, with smaller counts: 10 hanging calls (full 40), 10 slowloris / silent /
##   slow-body connections each (full 30), 2,000 malformed requests (full 10,000), 2 s of load
##   before each kill -9 and ~100 trace files signature-verified per posture (full 5 s, ~400),
##   8x20 concurrent calls for trace uniqueness (full 16x50), 4 kills per session kill scenario
##   (full 20). The full form is `make test-chaos` (~4-6 min).
## - run_compose_local.sh and check_prometheus.sh have a single form (well under 1 min each).
ci-release-quick: release
	DEMO_ONESHOT=1 bash scripts/demo.sh
	GAIT_SKIP_BUILD=1 bash scripts/test_hardening_acceptance.sh
	SOAK_PROCS=8 SOAK_APPENDS=100 SOAK_TASKS=64 SOAK_TASK_APPENDS=256 bash scripts/test_session_soak.sh
	GAIT_SKIP_BUILD=1 CHAOS_QUICK=1 CHAOS_KILLS=4 timeout 900 bash chaos/run.sh
	bash scripts/test_mcp_interop.sh
	GAIT_SKIP_BUILD=1 bash scripts/validate_deploy.sh
	GAIT_SKIP_BUILD=1 timeout 600 bash scripts/run_compose_local.sh
	GAIT_SKIP_BUILD=1 timeout 300 bash scripts/check_prometheus.sh
	GAIT_SKIP_BUILD=1 SOAK_SECONDS=40 timeout 300 bash scripts/soak_proxy.sh
	$(MAKE) ci-release-report

## Known-failing release checks (see README "Status"): run and reported in CI, not gating.
## Each prints its PASS/FAIL lines; the summary line says which failed.
ci-release-report:
	-GAIT_SKIP_BUILD=1 timeout 1500 python3 scripts/check_budgets.py --quick; echo "REPORT-ONLY bench-budgets exit=$$?"
