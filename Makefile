# Fiscal toolkit.  `make demo` and `make test` work on a fresh machine: they create .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STUBS := .stubs
FIRMWARE_OUT := build/firmware

.PHONY: all demo test test-full bench firmware mypy gen clean

all: test

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@$(BIN)/pip install -q -e '.[pcsc]' 2>/dev/null || echo "pyscard did not build (needs libpcsclite-dev and swig): the PC/SC test will skip"
	@touch $@

# MicroPython stubs shadow the standard library, so they live in their own folder, never in the venv.
$(STUBS)/.installed: $(STAMP)
	rm -rf $(STUBS) $(STUBS)-rp2
	$(BIN)/pip install -q --target $(STUBS) micropython-unix-stubs
	$(BIN)/pip install -q --target $(STUBS)-rp2 micropython-rp2-stubs
	@touch $@

venv: $(STAMP) $(STUBS)/.installed

demo: $(STAMP)
	$(BIN)/python -m testbed.demo

test: $(STAMP) $(STUBS)/.installed
	$(BIN)/python -m pytest -m "not slow" -p no:cacheprovider

test-full: $(STAMP) $(STUBS)/.installed
	$(BIN)/python -m pytest -p no:cacheprovider

bench: $(STAMP)
	@mkdir -p bench/results
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

mypy: $(STAMP) $(STUBS)/.installed
	$(BIN)/mypy --config-file firmware/mypy.ini
	$(BIN)/mypy --config-file firmware/boards/rp2/mypy.ini

# regenerate firmware/fiscal_till/codes.py, docs/PROTOCOL.md and docs/RULES.md from protocol/
gen: $(STAMP)
	$(BIN)/python -m protocol.codegen
	$(BIN)/python -m protocol.docgen
	$(BIN)/python -m protocol.rulesdoc

# .mpy files ready to copy to a board (mpremote cp -r build/firmware/* :) or to freeze
firmware: $(STAMP)
	$(BIN)/python -m hw_sim.firmware_image $(FIRMWARE_OUT)

clean:
	rm -rf build .pytest_cache .hypothesis bench/results/*.json .stubs .stubs-rp2
