# Everything a fresh clone needs: `make demo` runs the topwords job locally, `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The strict editable install links each module file: a module added or moved (a folder's
# mtime changes) needs it again, or imports of the new module fail after a pull.
EDITABLE := $(VENV)/.editable
PACKAGE_DIRS := $(shell find engine schema templates -type d -not -name __pycache__ 2>/dev/null)
NODE_STAMP := node_modules/.installed
COMPAT := $(VENV)/compat
COMPAT_STAMP := $(COMPAT)/.installed
# The dashboard's front-end assets: pinned npm packages (package-lock.json) copied into the
# package with their licences, so the wheel ships them; nothing is fetched at run time.
VENDOR := engine/ui/static/vendor
VENDOR_STAMP := $(VENDOR)/.copied

.PHONY: all install demo test unit lint typecheck bench docs clean chaos vendor

all: test

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	touch $@

$(EDITABLE): $(STAMP) $(PACKAGE_DIRS) $(VENDOR_STAMP)
	$(BIN)/pip install --quiet --no-deps -e . --config-settings editable_mode=strict
	touch $@

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js 18+ (with npm) to run Azurite, the local Blob Storage emulator." >&2; exit 2; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# An older client generation (azure-batch 12, msrest) in its own venv, for the compatibility tests.
$(COMPAT_STAMP): requirements-compat.lock
	$(PYTHON) -m venv $(COMPAT)
	$(COMPAT)/bin/pip install --quiet -r requirements-compat.lock
	touch $@

$(VENDOR_STAMP): $(NODE_STAMP)
	mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/htmx.min.js
	cp node_modules/htmx.org/LICENSE $(VENDOR)/htmx.LICENSE
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css $(VENDOR)/
	cp node_modules/uplot/LICENSE $(VENDOR)/uPlot.LICENSE
	touch $@

vendor: $(VENDOR_STAMP)

install: $(EDITABLE) $(NODE_STAMP) $(COMPAT_STAMP) $(VENDOR_STAMP)

demo: install
	$(BIN)/bspec apply specs/topwords.yaml --yes
	@echo "Next: $(BIN)/bspec status specs/topwords.yaml; $(BIN)/bspec logs specs/topwords.yaml topN-taskdata1; $(BIN)/bspec destroy specs/topwords.yaml"

test: install
	$(BIN)/ruff check engine tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

# Chaos and soak tests (pytest marker `chaos`, deselected from `make test`): minutes, not seconds.
# The soak runs BSPEC_SOAK_SECONDS (default 1200) over BSPEC_SOAK_TASKS (default 2000) tasks,
# seeded by BSPEC_SOAK_SEED; BSPEC_SOAK_REPORT=file writes its figures (docs/reliability.md).
chaos: install
	$(BIN)/pytest -m chaos tests/reliability

unit: $(EDITABLE)
	$(BIN)/pytest tests/unit

lint: $(EDITABLE)
	$(BIN)/ruff check engine tests bench
	$(BIN)/ruff format --check engine tests bench
	$(BIN)/lint-imports

typecheck: $(EDITABLE)
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench

# docs/spec.md is generated from the schema's descriptions; a test checks it is current.
docs: $(EDITABLE)
	$(BIN)/python -m bspec.docgen -o docs/spec.md

clean:
	rm -rf $(VENV) node_modules build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
