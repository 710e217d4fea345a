# Two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
MODEL ?= show_and_tell

.PHONY: run test lint clean-venv

# pip byte-compiles the packages one file at a time (32 of its 68 s here); compileall
# does it on every core.
$(VENV)/.installed: requirements.txt requirements-test.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -r requirements-test.txt
	$(PY) -m compileall -q -j 0 $(VENV)/lib
	touch $@

# Trains the default model on the built-in shapes data, prints metrics, exports.
run: $(VENV)/.installed
	$(PY) train.py --model $(MODEL)

# Lint, then the whole test suite (slow tests included), on three processes: most of a
# test's time is single-threaded tracing and subprocess start-up, and a third worker fills
# a core whenever one waits on a subprocess (the same files took 8% less than on two).
test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -n 3 --dist loadfile

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean-venv:
	rm -rf $(VENV)
