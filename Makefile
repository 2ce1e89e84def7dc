# The two commands of the README. Both set up the environment first
# (tools/setup_env.sh: idempotent, seconds once the environment exists).
PY := .venv/bin/python

.PHONY: setup demo test test-slow benchmark

setup:
	tools/setup_env.sh

## The main job: the embedded end-to-end demo.
demo: setup
	$(PY) tools/demo.py

## The test suite (what CI runs). Slow cases are opt-in: make test-slow.
test: setup
	$(PY) -m pytest

test-slow: setup
	$(PY) -m pytest -m slow

## Side-by-side timing of the DCNv3 implementations.
benchmark: setup
	$(PY) tools/analysis_tools/benchmark_op.py
