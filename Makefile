# Quick start on a fresh machine:  make demo   |   make test
# Both create the virtualenv and install firetape (with its test tools) on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test test-unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/firetape demo

# Every test, including the ones on a real local Kafka broker (fetched from Maven
# Central and started by the test session itself: Java 17 and Maven are needed).
test: $(STAMP)
	$(BIN)/python -m pytest -q

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/replay

bench: $(STAMP)
	$(BIN)/python bench/bench_backtest.py

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
