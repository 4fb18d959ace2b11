# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RKIT := $(VENV)/bin/rkit
STAMP := $(VENV)/.installed

.PHONY: env demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

env: $(STAMP)

# -j2: the demo's steps run one torch thread each (its figures depend on the thread count), two at a time
demo: $(STAMP)
	$(MAKE) -C examples -j2 RKIT=$(abspath $(RKIT)) PYTHON=$(abspath $(PY)) demo

test: $(STAMP)
	$(VENV)/bin/pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check retrievalkit tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/extract_throughput.py

clean:
	rm -rf examples/out
