# Every target sets itself up: a fresh clone needs only python3 (>=3.10) and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the napari plugin's extra (napari, Qt, pytest-qt): the tests need it, the demo does not
NAPARI_STAMP := $(VENV)/.installed-napari
export NO_ALBUMENTATIONS_UPDATE := 1
export MPLBACKEND := Agg
# Qt without a screen (the napari plugin's tests); napari draws with OpenGL, which offscreen
# Qt gets from an X server: the tests run under Xvfb when it is installed and no DISPLAY is set
export QT_QPA_PLATFORM := offscreen
XVFB_RUN := $(if $(DISPLAY),,$(shell command -v xvfb-run >/dev/null 2>&1 && \
	command -v xauth >/dev/null 2>&1 && echo 'xvfb-run -a -s "-screen 0 1920x1200x24"'))

.PHONY: setup demo demo-quick test lint bench gpu-check clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(NAPARI_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,napari]"
	touch $(NAPARI_STAMP)

demo: $(STAMP)
	$(BIN)/bioaug demo --out demo-out

demo-quick: $(STAMP)
	$(BIN)/bioaug demo --quick --out demo-out

test: $(STAMP) $(NAPARI_STAMP)
	$(BIN)/ruff check bioaug tests benchmarks examples tools
	$(XVFB_RUN) $(BIN)/python -m pytest -q --timeout=900

lint: $(STAMP)
	$(BIN)/ruff check bioaug tests benchmarks examples tools

bench: $(STAMP)
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache
