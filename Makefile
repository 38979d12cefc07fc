# The two set-up commands of the README: `make run FLOW=...` and `make test`.
# Both create the virtualenv and obtain the Temporal CLI (found, downloaded, or built with Go) first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FLOW ?= examples/parallel.yaml

.PHONY: install temporal browser s3server run test record-histories clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# The Temporal dev server binary, unless runs go to an existing server.
temporal: install
	@if [ -z "$$TEMPORAL_ADDRESS" ] || [ "$(MAKECMDGOALS)" = "test" ]; then \
		$(BIN)/python -m client.temporal_cli > /dev/null; fi

run: temporal
	$(BIN)/tflow run $(FLOW)

# Chromium for the web view's browser test (tests/e2e/test_webui.py): Debian's package, installed
# when missing and apt-get runs as root; otherwise that test skips, saying why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
		echo "could not install chromium: the browser test will skip"; \
	else echo "no chromium, and no apt-get as root to install it: the browser test will skip"; fi

# SeaweedFS's `weed`, the real S3-compatible server of the S3 storage tests (tests/conftest.py s3_server):
# found (TFLOW_WEED, PATH, .tools/bin) or built once with Go (client/s3server.py); without it they skip, saying why.
s3server: install
	@$(BIN)/python -m client.s3server > /dev/null || echo "no SeaweedFS weed: the S3 storage tests will skip"

test: temporal browser s3server
	$(BIN)/python -m pytest

# Record a new generation of the histories the replay tests check (after an intended, patched
# interpreter change): make record-histories LABEL=v4. Older generations are kept and keep replaying.
record-histories: temporal
	$(BIN)/python -m tests.histories.record $(LABEL)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Benchmarks and long runs (bench/): each starts its own dev server and worker subprocesses.
.PHONY: bench soak large-runs foreach-scale

# The interpreter against a hand-written Temporal workflow; BENCH_ARGS=--check exits 1 on a missed target.
bench: temporal
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# 20,000 commands tasks at 50 concurrent through the interpreter, with a no-progress watchdog.
soak: temporal
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# Two large runs through `tflow run --json`: 100 tasks x 25 KB outputs, 2,500 tasks in one parallel.
large-runs: temporal
	$(BIN)/python -m bench.large_runs $(LARGE_RUNS_ARGS)

# A for-each of 1,000 and of 10,000 pure items: the per-item cost must not grow with the size.
foreach-scale: temporal
	$(BIN)/python -m bench.foreach_scale $(FOREACH_SCALE_ARGS)
