# Every target sets itself up: a fresh clone needs only python3 (>=3.10) and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export NO_ALBUMENTATIONS_UPDATE := 1
export MPLBACKEND := Agg

.PHONY: setup demo demo-quick test lint bench gpu-check clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bioaug demo --out demo-out

demo-quick: $(STAMP)
	$(BIN)/bioaug demo --quick --out demo-out

test: $(STAMP)
	$(BIN)/ruff check bioaug tests benchmarks examples tools
	$(BIN)/python -m pytest -q --timeout=900

lint: $(STAMP)
	$(BIN)/ruff check bioaug tests benchmarks examples tools

bench: $(STAMP)
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache
