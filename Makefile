# Fresh machine: `make demo` or `make test` install everything they need into .venv/ first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e ".[dev]"
	touch $(STAMP)

test: install
	$(PY) -m pytest -q -p no:cacheprovider

demo: install
	$(PY) -m ssl_toolkit demo

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf runs/ .pytest_cache
