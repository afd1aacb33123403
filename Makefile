# wormflow: two commands on a fresh machine, `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# PyTorch for analysis.langevin: this pinned release is a CPU wheel here (see the README for CUDA)
TORCH ?= torch==2.13.0
NDX ?= ndx-multichannel-volume==0.1.12
MIRROR ?= $(if $(WORMFLOW_MIRROR),$(WORMFLOW_MIRROR),../shared/data)
OUT ?= out

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: install browser test demo bench clean

$(BIN)/wormflow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	# setuptools prints an "Editable installation" notice on every editable install (a
	# reminder, not a problem of this project): that notice alone is filtered out
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e ".[test,langevin]"
	# the WormID NWB extension pins pynwb<3: installed without its dependencies, wormflow
	# loads only its YAML namespace (see activity/nwb.py)
	$(BIN)/python -m pip install --quiet --no-deps "$(NDX)"
	touch $@

install: $(BIN)/wormflow

# Debian's chromium renders the pipeline report in a test.
browser:
	@command -v chromium >/dev/null 2>&1 || $(SUDO) apt-get install -y -q chromium >/dev/null 2>&1 || \
	  ($(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q chromium >/dev/null) || \
	  echo "could not install chromium: the report test will fail (apt-get install chromium)"

test: install browser
	WORMFLOW_MIRROR=$(MIRROR) $(BIN)/python -m pytest -q tests

demo: install
	$(BIN)/wormflow run --workdir $(OUT) --mirror $(MIRROR)

# the same-run baselines: tensorly and pyunicorn from PyPI here; the research references
# (worm-graph, onehot-hmmglm, LangevinFlow) each in its own environment under .anchors/
bench: install
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/anchors.py setup
	WORMFLOW_MIRROR=$(MIRROR) $(BIN)/python bench/ingest.py
	WORMFLOW_MIRROR=$(MIRROR) $(BIN)/python bench/connectome_ingest.py
	WORMFLOW_MIRROR=$(MIRROR) $(BIN)/python bench/tsnet.py
	$(BIN)/python bench/ntf.py
	WORMFLOW_MIRROR=$(MIRROR) $(BIN)/python bench/nwb.py
	WORMFLOW_MIRROR=$(MIRROR) $(BIN)/python bench/publish.py
	WORMFLOW_MIRROR=$(MIRROR) $(BIN)/python bench/pipeline_run.py
	WORMFLOW_MIRROR=$(MIRROR) $(BIN)/python bench/hmmglm.py
	$(BIN)/python bench/langevin.py

clean:
	rm -rf $(VENV) $(OUT) *.egg-info
