# Two commands do all the set-up: `make demo` and `make test`.
# Both create (or reuse) the virtual environment in .venv and install the project into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench docs clean

# uv installs what pip would, downloading and unpacking in parallel: PyTorch with its CUDA libraries
# takes seconds instead of a minute and a half. It compiles the modules to bytecode as pip does, or
# every start of Python would compile PyTorch again wherever no bytecode cache may be written. Where
# uv cannot be had, or fails, pip does the same. A package index set for pip (PIP_INDEX_URL) is
# given to uv too, which does not read pip's settings.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv \
		&& $(PY) -m uv pip install --quiet --compile-bytecode --python $(PY) \
			$(if $(PIP_INDEX_URL),--index-url "$(PIP_INDEX_URL)") -e ".[test]" \
		|| $(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m demos.house_prices

test: $(STAMP) lint
	$(PY) -m pytest -n 2 --dist worksteal -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP)
	$(PY) -m bpdemo.bench

# Rerun every command whose output or figure the pages show, and paste the results in (docs/build.py).
docs: $(STAMP)
	$(PY) docs/build.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .hypothesis
