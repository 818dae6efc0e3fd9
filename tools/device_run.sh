#!/usr/bin/env bash
# The prepared GPU run (docs/device_run.md), one command on the lent machine
# (the device tool's kind nvidia-h200, or nvidia-h100-x1: the kit fits both):
#
#   bash tools/device_run.sh                      # preset gpu, 540 s in all
#   bash tools/device_run.sh --preset rehearsal   # the CPU rehearsal (tests)
#
# Installs the kit that `python tools/device_kit.py` put into .devkit/ (no
# index, into a fresh temporary site folder), then runs tools/device_run.py,
# which writes every result into $OUT (default work_dirs/device_run) as soon
# as it exists, each through a temporary file in ${OUT}_work (not in $OUT).
# Variables: PYTHON (default python3), OUT, AEMIM_DEVKIT (the kit folder,
# default .devkit).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$(date +%s)
PYTHON=${PYTHON:-python3}
KIT=${AEMIM_DEVKIT:-.devkit}
OUT=${OUT:-work_dirs/device_run}
if ! ls "$KIT"/wheels/*.whl >/dev/null 2>&1; then
    echo "device_run: no kit in $KIT: run 'python tools/device_kit.py' first" \
        "and carry .devkit" >&2
    exit 2
fi
mkdir -p "$OUT"
SITE=$(mktemp -d)
trap 'rm -rf "$SITE"' EXIT
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --disable-pip-version-check --upgrade --target "$SITE" "$KIT"/wheels/*.whl
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
"$PYTHON" tools/device_run.py --out "$OUT" --kit "$KIT" \
    --started "$started" "$@" 2>&1 | tee -a "$OUT/run.log"
