# aemim_mm task runner. The README's two commands: `make demo`, `make test`.
# Details: docs/install.md.
#
#   make env       venv with torch + the core (mmpretrain, mmcv-lite) and dev extras
#   make env-det   env + the det extra (mmdet) + full mmcv (tools/install_mmcv.sh)
#   make demo      env, then tools/demo.py (writes to work_dirs/demo)
#   make test      env-det, then pytest (detection tests fail instead of skipping)
#   make test-fast env-det, then pytest -m 'not slow' (no end-to-end runs; minutes)
#   make devkit    env, then tools/device_kit.py: .devkit/ for the GPU run
#                  (docs/device_run.md)
#
# Variables: PYTHON (interpreter that creates the venv), VENV (venv folder),
# SHARED_WHEELS (a wheel cache passed to tools/install_mmcv.sh when it exists).

PYTHON ?= python3.11
VENV ?= .venv
SHARED_WHEELS ?= ../shared/wheels

PY := $(VENV)/bin/python
CONSTRAINTS := requirements/constraints.txt
PIP_INSTALL := $(PY) -m pip install -c $(CONSTRAINTS)
# The stamps live in the venv, so each venv has its own; they are redone when
# setup.py or a requirements file changes.
ENV_STAMP := $(VENV)/.aemim-env.stamp
DET_STAMP := $(VENV)/.aemim-env-det.stamp
REQ_FILES := setup.py $(wildcard requirements/*.txt)

.DEFAULT_GOAL := help
.PHONY: help env env-det demo test test-fast devkit

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

env: $(ENV_STAMP)

# The mmcv step runs every time: it is a quick no-op (a few seconds) when full
# mmcv works, and it repairs a venv where mmcv-lite was put back by hand.
env-det: $(DET_STAMP)
	bash tools/install_mmcv.sh --python $(PY) $(if $(wildcard $(SHARED_WHEELS)),--find-links $(SHARED_WHEELS))

$(PY):
	@command -v $(PYTHON) >/dev/null || { echo "make: '$(PYTHON)' not found; pass PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# torch and torchvision are installed together, first, so that no later step
# picks a different torch. If full mmcv is already installed (make env-det ran),
# the core extra is installed without mmcv-lite: installing mmcv-lite over mmcv
# would overwrite and later delete files of the shared `mmcv/` package folder.
$(ENV_STAMP): $(REQ_FILES) | $(PY)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) 'setuptools>=77.0.3,<81'
	$(PIP_INSTALL) torch torchvision
	@if $(PY) -m pip show --quiet mmcv >/dev/null 2>&1; then \
	    echo "make env: full mmcv is installed in $(VENV): keeping it, not installing mmcv-lite"; \
	    echo "$(PIP_INSTALL) -e '.[dev]' -r requirements/core.txt"; \
	    $(PIP_INSTALL) -e '.[dev]' -r requirements/core.txt; \
	else \
	    echo "$(PIP_INSTALL) -e '.[core,dev]'"; \
	    $(PIP_INSTALL) -e '.[core,dev]'; \
	fi
	touch $@

# The det extra (mmdet, pycocotools); full mmcv in place of mmcv-lite: env-det.
$(DET_STAMP): $(ENV_STAMP)
	$(PIP_INSTALL) -e '.[det]'
	touch $@

demo: env
	$(PY) tools/demo.py

test: env-det
	AEMIM_REQUIRE_DET=1 $(PY) -m pytest tests

# The edit-test loop: everything but the tests marked `slow` (pytest.ini).
test-fast: env-det
	AEMIM_REQUIRE_DET=1 $(PY) -m pytest -m 'not slow' tests

# What the lent GPU machine needs and lacks (wheels, CIFAR-10), git-ignored.
devkit: env
	$(PY) tools/device_kit.py
