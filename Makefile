# b12kg: `make demo` and `make test` are the Quick start. Every target creates the virtual
# environment it needs. `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Two environments in one .venv: `make demo` installs only what b12kg needs to run; the test
# targets add the test extras (pytest, hypothesis, jsonschema, owlready2, the oxigraph server).
# The exact versions come from constraints.txt; pyproject.toml holds the ranges.
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
PIP    := $(BIN)/python -m pip install -q -c constraints.txt
# The acceptance cases of the version the code implements: the vendored copy. Another version
# can be run as a target, not a gate: `make test CASES=../shared/cases`.
CASES  ?= vendor/shared/cases
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider

.PHONY: help install demo test test-components test-all build qc clean fuzz bench demo-store

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	@touch $@

$(TEST_STAMP): $(RUN_STAMP)
	$(PIP) -e '.[test]'
	@touch $@

install: $(TEST_STAMP) ## create .venv and install b12kg with its test dependencies

demo: $(RUN_STAMP) ## assess the bundled example patients with the embedded store and print the report
	$(BIN)/b12kg demo

build: $(RUN_STAMP) ## write the merged ontology: dist/b12kg.ttl and dist/b12kg.jsonld
	$(BIN)/python -m b12kg.build dist

qc: $(RUN_STAMP) ## run the QC queries of queries/qc on the merged ontology
	$(BIN)/b12kg qc

# pytest's exit code 5 (no test collected) is not a failure here. The tests run on every core
# (pytest-xdist, JOBS workers; JOBS=0 runs them in this process).
JOBS ?= auto
XDIST := $(if $(filter 0,$(JOBS)),,-n $(JOBS))
test: $(TEST_STAMP) ## the test suite without the slow runs, then the acceptance cases (CASES) through the CLI
	$(PYTEST) $(XDIST) -m "not slow and not virtuoso" tests; rc=$$?; if [ $$rc -ne 0 ] && [ $$rc -ne 5 ]; then exit $$rc; fi
	$(BIN)/b12kg cases $(CASES)

test-components: $(TEST_STAMP) ## the tests that start Virtuoso and local Spark themselves (CI runs them after make test)
	$(PYTEST) $(XDIST) -m "virtuoso or spark" tests; rc=$$?; if [ $$rc -ne 0 ] && [ $$rc -ne 5 ]; then exit $$rc; fi

test-all: $(TEST_STAMP) ## the whole test suite, slow runs included (about an hour on 2 cores), then the acceptance cases
	$(PYTEST) $(XDIST) tests; rc=$$?; if [ $$rc -ne 0 ] && [ $$rc -ne 5 ]; then exit $$rc; fi
	$(BIN)/b12kg cases $(CASES)

demo-store: $(TEST_STAMP) ## run the rules inside a SPARQL 1.1 server (oxigraph serve on a free port) over the examples
	$(BIN)/python -m b12kg.cohort.remote demo

FUZZ_MINUTES ?= 10
fuzz: $(TEST_STAMP) ## the long fuzz run: the hypothesis properties with fresh seeds for FUZZ_MINUTES (default 10)
	$(BIN)/python tests/fuzz/run_fuzz.py --minutes $(FUZZ_MINUTES)

BENCH_SIZES ?= 1000,10000,100000,1000000
bench: $(TEST_STAMP) ## the benchmark of bench/run.py (BENCH_SIZES, default up to 1,000,000): writes bench/results.md
	$(BIN)/python bench/run.py --sizes $(BENCH_SIZES)

clean: ## remove the environment and build output
	rm -rf $(VENV) dist .pytest_cache
