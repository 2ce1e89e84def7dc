# The README's commands. Each sets up the environment first
# (tools/setup_env.sh: idempotent, seconds once the environment exists).
PY := .venv/bin/python
CXX_SOURCES := $(shell find csrc tests -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh')

.PHONY: setup demo test test-fast test-slow lint benchmark

setup:
	tools/setup_env.sh

## The main job: the embedded end-to-end demo.
demo: setup
	$(PY) tools/demo.py

## What CI runs: every test but the slow cases, which make test-slow runs.
test: setup
	$(PY) -m pytest

## Everything that does not train or export a whole model.
test-fast: setup
	@start=$$(date +%s); $(PY) -m pytest -m 'not slow and not integration'; status=$$?; \
	echo "make test-fast: $$(( $$(date +%s) - start )) s"; exit $$status

test-slow: setup
	$(PY) -m pytest -m slow

## ruff on the Python, clang-format on the C++/CUDA of csrc/ and tests/ (configurations: pyproject.toml, .clang-format).
lint: setup
	.venv/bin/ruff check .
	.venv/bin/clang-format --dry-run --Werror $(CXX_SOURCES)

## Side-by-side timing of the DCNv3 implementations.
benchmark: setup
	$(PY) tools/analysis_tools/benchmark_op.py
