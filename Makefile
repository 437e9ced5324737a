# The two commands of the README: `make demo` and `make test`.
# Both create the virtual environment in .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean bench docs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first: the CPU build that lies on this machine's disk (a bare
	# `torch` requirement would otherwise pull a multi-GB CUDA build).
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/elbokit demo --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# the reference docs (mkdocs + mkdocstrings): strict, so a broken cross-reference or a
# docstring griffe cannot read fails the build; the site goes to site/
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/python -m mkdocs build --strict  # not --quiet: it hides the warnings from --strict

bench: $(STAMP)
	$(BIN)/python benchmarks/classical.py

clean:
	rm -rf $(VENV) runs build site *.egg-info src/*.egg-info
