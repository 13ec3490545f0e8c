# Thin wrappers around `python3 -m tools`; README.md explains each step.
PYTHON ?= python3
# Release lines to build and test: the 3.7 series by default; CI adds 3.13.
BASES ?= 3.7
VENV := build/venv

.PHONY: build test bench lint clean

# The main job: a patched interpreter under build/<line>/ for each line.
build:
	for base in $(BASES); do $(PYTHON) -m tools build --base $$base || exit 1; done

# Host tools for the tests (pytest, blurb, ...), pinned, in a private venv.
$(VENV)/installed: requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r requirements/dev.txt
	touch $@

# The test command: the tools' own tests and the end-to-end tests of the
# patched interpreters (pytest), then CPython's pickle tests on each.
test: build $(VENV)/installed
	$(VENV)/bin/python -m pytest -rs tests
	for base in $(BASES); do $(PYTHON) -m tools test --base $$base || exit 1; done

bench: build $(VENV)/installed
	for base in $(BASES); do $(VENV)/bin/python -m tools bench --base $$base --quick || exit 1; done

# The pre-commit hooks (whitespace, ruff, PEP 7 rules for our C files,
# patchcheck of each series) on every file of the repository.
lint: $(VENV)/installed
	$(VENV)/bin/pre-commit run --all-files

clean:
	rm -rf build
