# Everything a fresh machine needs: `make test` and `make demo` set up, then run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PYTEST_ARGS ?=

.PHONY: setup control-plane test lint demo bench cluster cluster-down clean chromium promtool

# torch goes in first and pinned: the machine holds a local CPU wheel of 2.13.0; any other
# resolution pulls a multi-GB CUDA build.
# The frontend's C kernel is compiled by the editable install: a change to it installs again.
$(STAMP): pyproject.toml $(wildcard worker/hydrophone_worker/detector/*.c worker/hydrophone_worker/detector/*.h)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[worker,sim,operator,dev]'
	touch $@

# Azurite, the Cosmos emulator and playwright-core, pinned in package-lock.json; tests start the emulators
# on 127.0.0.1. playwright-core drives Debian's chromium (below): it must never download a browser.
$(NODE_STAMP): package.json package-lock.json
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's chromium for the review page's browser test (tests/publish/test_review_browser.py).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

# promtool for `promtool test rules` on the chart's alerts (tests/ship/test_alerts.py), built once per
# version from the Go module proxy into a cache outside the repository (cold: ~9 CPU-minutes, see README).
PROMTOOL_VERSION ?= v0.316.0
PROMTOOL_DIR ?= $(HOME)/.cache/hydrophone-operator/promtool-$(PROMTOOL_VERSION)
export PROMTOOL := $(PROMTOOL_DIR)/promtool
# Under a lock: checkouts that set up at the same time on one machine build it once.
$(PROMTOOL):
	mkdir -p $(dir $(PROMTOOL_DIR))
	flock $(PROMTOOL_DIR).lock sh -c 'test -x $(PROMTOOL) || { \
		rm -rf $(PROMTOOL_DIR).tmp && \
		GOBIN=$(PROMTOOL_DIR).tmp GOFLAGS=-buildvcs=false go install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION) && \
		rm -rf $(PROMTOOL_DIR) && mv $(PROMTOOL_DIR).tmp $(PROMTOOL_DIR); }'
promtool: $(PROMTOOL)

setup: $(STAMP) $(NODE_STAMP) chromium promtool

# etcd, kube-apiserver and kube-controller-manager built from the Go module proxy (needs Go 1.26), cached
# under ~/.cache/hydrophone-operator by version: only the first run on a machine compiles (tens of minutes).
control-plane: $(STAMP)
	$(PY) tools/control_plane.py build >/dev/null

# mypy --strict (settings in pyproject.toml [tool.mypy]) on both packages, then on the scripts beside them:
# a benchmark path that runs only on some CPUs (bf16) must not break unseen when an API changes.
MYPY := $(VENV)/bin/mypy -p hydrophone_worker -p hydrophone_operator
MYPY_SCRIPTS := $(VENV)/bin/mypy --explicit-package-bases benchmarks tools charts
# The CRD, its chart copy, values.schema.json and the README's spec table are generated from the spec's
# pydantic models: stale copies fail the build (`python charts/sync_chart.py` rewrites them).
SPEC_CHECK := $(PY) charts/sync_chart.py --check

test: setup control-plane
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MYPY)
	$(MYPY_SCRIPTS)
	$(SPEC_CHECK)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MYPY)
	$(MYPY_SCRIPTS)
	$(SPEC_CHECK)

# Offline: moto on 127.0.0.1, the simulator (accelerated), `hydrophone-worker run` with the demo model.
# Needs only the Python environment (no npm emulators).
demo: $(STAMP)
	$(PY) tools/demo.py

bench: setup control-plane
	$(PY) benchmarks/detector.py
	$(PY) benchmarks/worker.py
	$(PY) benchmarks/worker.py --precision bf16
	$(PY) benchmarks/worker.py --compile
	$(PY) benchmarks/operator.py

# Try the operator on your laptop: a real control plane on 127.0.0.1 (no kubelet: pods stay Pending).
CLUSTER_DIR ?= .cluster
cluster: control-plane
	$(PY) tools/control_plane.py up --dir $(CLUSTER_DIR)
	@echo "export KUBECONFIG=$(abspath $(CLUSTER_DIR))/admin.kubeconfig"

cluster-down: $(STAMP)
	$(PY) tools/control_plane.py down --dir $(CLUSTER_DIR)

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache
