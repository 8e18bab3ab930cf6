# Fresh machine: `make demo` or `make test` install everything they need into .venv/ first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: install test lint docs demo bench bench-env clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e ".[dev,timm,docs,lint]"
	# HEAR 2021 validator for the HEAR API test; --no-deps: it would pull TensorFlow, used only for TF models
	$(PY) -m pip install -c constraints.txt --no-deps hearvalidator==2021.0.2
	touch $(STAMP)

test: install
	$(PY) -m pytest -q -p no:cacheprovider

# The documentation site (MkDocs + mkdocstrings, mkdocs.yml) into site/, strictly: a broken link fails.
docs: install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

# Lint, import order and formatting (ruff; pyproject.toml) and types (mypy: the whole package, pyproject.toml).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# BYOL-A on the speech shipped in data/demo (labels unused), then EmoDB emotion recognition of 2 unseen speakers:
# model vs random init vs log-mel, 3 linear-probe seeds. About 4 minutes on 2 CPU cores after the install.
demo: install
	$(PY) -m ssl_toolkit train recipes/audio/byola_demo.yaml --out runs/demo --resume auto
	$(PY) -m ssl_toolkit eval recipes/eval/emodb_demo.yaml --checkpoint runs/demo --out runs/demo/eval
	$(PY) -m ssl_toolkit plot runs/demo

# The peers of the side-by-side benchmarks (lightly, byol-pytorch) live in their own environment, never in
# the package's dependencies.
bench-env: $(BENCH_STAMP)

$(BENCH_STAMP): benchmarks/constraints-peers.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -c benchmarks/constraints-peers.txt torch torchvision lightly byol-pytorch
	touch $(BENCH_STAMP)

# Every benchmark table in benchmarks/results/ (about an hour on 2 CPU cores; run it on a quiet machine).
bench: install bench-env
	$(PY) benchmarks/speed/bench_utilization.py
	$(PY) benchmarks/speed/bench_peers.py
	$(PY) benchmarks/speed/bench_audio_peers.py --precision fp32
	$(PY) benchmarks/speed/bench_audio_peers.py --precision bf16
	$(PY) benchmarks/quality/bench_quality.py
	$(PY) benchmarks/speed/bench_eval.py
	$(PY) benchmarks/speed/bench_monitor_cost.py
	$(PY) benchmarks/speed/profile_step.py --recipe image
	$(PY) benchmarks/speed/profile_step.py --recipe audio

clean:
	rm -rf runs/ .pytest_cache
