# Fresh machine: `make demo` or `make test` install everything they need into .venv/ first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e ".[dev]"
	# HEAR 2021 validator for the HEAR API test; --no-deps: it would pull TensorFlow, used only for TF models
	$(PY) -m pip install -c constraints.txt --no-deps hearvalidator==2021.0.2
	touch $(STAMP)

test: install
	$(PY) -m pytest -q -p no:cacheprovider

demo: install
	$(PY) -m ssl_toolkit train recipes/audio/byola_fsdd.yaml --out runs/demo --resume auto
	$(PY) -m ssl_toolkit eval recipes/eval/fsdd_demo.yaml --checkpoint runs/demo --out runs/demo/eval
	$(PY) -m ssl_toolkit plot runs/demo

clean:
	rm -rf runs/ .pytest_cache
