# wormflow: two commands on a fresh machine, `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MIRROR ?= $(if $(WORMFLOW_MIRROR),$(WORMFLOW_MIRROR),../shared/data)
OUT ?= out

.PHONY: install test demo bench clean

$(BIN)/wormflow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/wormflow

test: install
	WORMFLOW_MIRROR=$(MIRROR) $(BIN)/python -m pytest -q tests

demo: install
	rm -rf $(OUT)/activity.zarr
	$(BIN)/wormflow ingest activity $(MIRROR)/activity/Dag2023 $(MIRROR)/activity/Scholz2018 --store $(OUT)/activity.zarr
	$(BIN)/wormflow validate $(OUT)/activity.zarr
	$(BIN)/wormflow info $(OUT)/activity.zarr
	$(BIN)/wormflow ingest connectome $(MIRROR)/connectome --store $(OUT)/connectome.zarr
	COLUMNS=120 $(BIN)/wormflow info $(OUT)/connectome.zarr
	$(BIN)/wormflow export-nwb $(OUT)/activity.zarr --out $(OUT)/nwb --overwrite
	$(BIN)/wormflow analyze tsnet --store $(OUT)/activity.zarr --out $(OUT)/analysis

bench: install
	WORMFLOW_MIRROR=$(MIRROR) $(BIN)/python bench/ingest.py
	WORMFLOW_MIRROR=$(MIRROR) $(BIN)/python bench/connectome.py
	WORMFLOW_MIRROR=$(MIRROR) $(BIN)/python bench/tsnet.py
	WORMFLOW_MIRROR=$(MIRROR) $(BIN)/python bench/nwb.py

clean:
	rm -rf $(VENV) $(OUT) *.egg-info
