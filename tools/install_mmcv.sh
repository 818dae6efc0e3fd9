#!/usr/bin/env bash
# Install full mmcv (compiled ops, needed by mmdet) into a Python environment,
# in place of mmcv-lite. Details: docs/install.md ("Full mmcv").
#
#   1. Nothing to do if mmcv $MMCV_VERSION is installed and its ops run.
#   2. A wheel for this Python from the wheelhouse (default: wheelhouse/ in the
#      repository) or from a --find-links folder is installed if there is one.
#   3. Otherwise the source release is downloaded from the registry, patched
#      (-std=c++17 -> the C++ standard torch's headers need), built into a
#      wheel (setuptools < 81, no build isolation: it compiles against the
#      environment's torch) and copied into the wheelhouse for next time.
#   mmcv-lite is uninstalled BEFORE mmcv is installed: both own the mmcv/
#   folder, and removing mmcv-lite afterwards would delete files of mmcv.
#   The result is checked by running mmcv.ops.nms and mmcv.ops.roi_align.
set -euo pipefail

MMCV_VERSION=2.1.0
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONSTRAINTS=$REPO/requirements/constraints.txt

usage() {
    cat <<EOF
usage: tools/install_mmcv.sh [options]
  --python PY       Python environment to install into (default: 'python' on PATH)
  --find-links DIR  also look for a prebuilt wheel in DIR (repeatable)
  --wheelhouse DIR  wheel cache: looked in first, built wheels are copied to it
                    (default: $REPO/wheelhouse)
  --build           build from source even if a wheel is available or mmcv works
  --dry-run         do not build or install: download and patch the source
                    release and print the build command (tests the build path)
  --jobs N          parallel compile jobs (default: \$MAX_JOBS, else nproc)
  --cxx-std STD     C++ standard for the build (default: what torch uses, e.g. c++20)
Environment: FORCE_CUDA=0|1 overrides the CPU/CUDA choice (default: CUDA build
only when torch sees a GPU and nvcc is found).
EOF
}

log() { echo "install_mmcv.sh: $*"; }
die() { echo "install_mmcv.sh: error: $*" >&2; exit 1; }

PY=""
WHEELHOUSE=$REPO/wheelhouse
FIND_LINKS=()
FORCE_BUILD=0
DRY_RUN=0
JOBS=${MAX_JOBS:-$(nproc)}
CXX_STD=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --python) PY=${2:?--python needs a value}; shift 2 ;;
        --find-links) FIND_LINKS+=("${2:?--find-links needs a value}"); shift 2 ;;
        --wheelhouse) WHEELHOUSE=${2:?--wheelhouse needs a value}; shift 2 ;;
        --build) FORCE_BUILD=1; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        --jobs) JOBS=${2:?--jobs needs a value}; shift 2 ;;
        --cxx-std) CXX_STD=${2:?--cxx-std needs a value}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done

# --- the Python environment -------------------------------------------------
if [[ -z $PY ]]; then
    PY=$(command -v python || command -v python3 || true)
    [[ -n $PY ]] || die "no 'python' on PATH; pass --python /path/to/venv/bin/python"
fi
if [[ ! -x $PY ]]; then
    found=$(command -v "$PY") || die "Python interpreter not found or not executable: '$PY'"
    PY=$found
fi
[[ -f $CONSTRAINTS ]] || die "constraints file missing: $CONSTRAINTS"
for dir in "${FIND_LINKS[@]}"; do
    [[ -d $dir ]] || die "--find-links folder does not exist: $dir"
done
[[ -z ${FORCE_CUDA:-} || $FORCE_CUDA == 0 || $FORCE_CUDA == 1 ]] \
    || die "FORCE_CUDA must be 0 or 1 (or unset), got '$FORCE_CUDA'"
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "--jobs / MAX_JOBS must be a positive integer, got '$JOBS'"

TORCH_VERSION=$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null) \
    || die "torch is not importable in $PY; install torch first (make env)"
log "Python: $PY (torch $TORCH_VERSION)"

# Exit status 0 and one line if mmcv $MMCV_VERSION is installed, mmcv-lite is
# not, and the compiled ops give the hand-checked results; else the reason.
check_mmcv() {
    "$PY" - "$MMCV_VERSION" <<'EOF'
import sys
from importlib import metadata


def dist_version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


want = sys.argv[1]
full, lite = dist_version('mmcv'), dist_version('mmcv-lite')
if full != want:
    sys.exit(f'full mmcv {want} is not installed (mmcv: {full}, mmcv-lite: {lite})')
if lite is not None:
    sys.exit(f'mmcv-lite {lite} is installed next to mmcv {full} (both own the mmcv/ folder)')
try:
    import torch
    from mmcv.ops import nms, roi_align
except Exception as e:  # an ABI mismatch shows up here as an ImportError
    sys.exit(f'mmcv {full} is installed but its compiled ops do not load: {e!r}')
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
_, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
if keep.tolist() != [0, 2]:
    sys.exit(f'mmcv.ops.nms kept {keep.tolist()}, expected [0, 2]')
feat = torch.full((1, 2, 8, 8), 3.0)
out = roi_align(feat, torch.tensor([[0., 1., 1., 5., 5.]]), (2, 2), 1.0, 2, 'avg', True)
if out.shape != (1, 2, 2, 2) or not torch.allclose(out, torch.full_like(out, 3.0)):
    sys.exit(f'mmcv.ops.roi_align of a constant 3 map gave {out.flatten().tolist()}')
print(f'mmcv {full} with working ops (nms, roi_align on CPU), torch {torch.__version__}')
EOF
}

if [[ $FORCE_BUILD == 0 && $DRY_RUN == 0 ]] && status=$(check_mmcv 2>&1); then
    log "already installed: $status; nothing to do"
    exit 0
fi
[[ $DRY_RUN == 1 ]] || log "${status:-rebuild requested (--build)}"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/install_mmcv.XXXXXX")
cleanup() {
    local rc=$?
    if [[ $rc != 0 && -n $(ls -A "$WORK") ]]; then
        echo "install_mmcv.sh: work folder kept for inspection: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# --- 1. a cached wheel for this interpreter ----------------------------------
WHEEL=""
if [[ $FORCE_BUILD == 0 ]]; then
    links=() dirs=()
    for dir in "$WHEELHOUSE" "${FIND_LINKS[@]}"; do
        if [[ -d $dir ]]; then links+=(--find-links "$dir"); dirs+=("$dir"); fi
    done
    # pip picks a wheel whose tags fit this interpreter (cp311, linux_x86_64...).
    if [[ ${#links[@]} -gt 0 ]] && "$PY" -m pip download --quiet --no-index --no-deps \
            --only-binary=:all: "${links[@]}" -d "$WORK/cached" "mmcv==$MMCV_VERSION" >/dev/null 2>&1; then
        WHEEL=$(ls "$WORK"/cached/mmcv-"$MMCV_VERSION"-*.whl)
        log "using cached wheel $(basename "$WHEEL") (looked in: ${dirs[*]})"
        log "note: a cached wheel only fits the torch it was built against; it is checked after install"
    else
        log "no mmcv $MMCV_VERSION wheel for this Python in: $WHEELHOUSE ${FIND_LINKS[*]:-} -> building from source"
    fi
fi

# --- 2. build from the source release -----------------------------------------
if [[ -z $WHEEL ]]; then
    # mmcv's setup.py imports pkg_resources (setuptools < 81) and torch; it is
    # built without isolation so that it compiles against this torch.
    "$PY" -c 'import pkg_resources' 2>/dev/null \
        || die "pkg_resources is not importable in $PY (setuptools >= 81?); mmcv $MMCV_VERSION's setup.py needs it: $PY -m pip install -c $CONSTRAINTS 'setuptools>=77.0.3,<81'"
    if [[ -z $CXX_STD ]]; then
        # The newest -std=c++NN torch's own extension builder passes.
        CXX_STD=$("$PY" - <<'EOF'
import re, torch.utils.cpp_extension as ce
src = open(ce.__file__, encoding='utf-8').read()
stds = [int(n) for n in re.findall(r"c\+\+(\d\d)'", src)]
print(f'c++{max(stds)}' if stds else 'c++17')
EOF
        ) || die "could not read the C++ standard from torch.utils.cpp_extension; pass --cxx-std"
    fi
    if [[ -n ${FORCE_CUDA:-} ]]; then
        CUDA=$FORCE_CUDA
    else
        gpu=$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))')
        nvcc=$("$PY" -c 'from torch.utils.cpp_extension import CUDA_HOME; print(CUDA_HOME or "")' 2>/dev/null || true)
        if [[ $gpu == 1 && -z $nvcc ]]; then
            die "torch sees a GPU but no CUDA toolkit (nvcc) was found: install the toolkit matching torch's CUDA, set CUDA_HOME, or set FORCE_CUDA=0 for a CPU-only build"
        fi
        CUDA=$gpu
    fi
    SCRIPTS=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
    if ! PATH="$SCRIPTS:$PATH" command -v ninja >/dev/null; then
        log "no ninja on PATH: installing it into $PY (without it the build is serial)"
        [[ $DRY_RUN == 1 ]] || "$PY" -m pip install -c "$CONSTRAINTS" ninja
    fi

    log "downloading the mmcv $MMCV_VERSION source release"
    "$PY" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
        -d "$WORK/sdist" "mmcv==$MMCV_VERSION" \
        || die "pip could not download the mmcv $MMCV_VERSION source release (network? registry?)"
    tar -xzf "$WORK/sdist/mmcv-$MMCV_VERSION.tar.gz" -C "$WORK" \
        || die "could not unpack $WORK/sdist/mmcv-$MMCV_VERSION.tar.gz"
    SRC=$WORK/mmcv-$MMCV_VERSION
    n=$(grep -c -- "-std=c++17" "$SRC/setup.py" || true)
    [[ $n -gt 0 ]] || die "no '-std=c++17' in $SRC/setup.py: the source release is not the one this script knows how to patch"
    sed -i "s/-std=c++17/-std=$CXX_STD/g" "$SRC/setup.py"
    log "patched $n line(s) of setup.py: -std=c++17 -> -std=$CXX_STD"

    BUILD_ENV=(MAX_JOBS="$JOBS" MMCV_WITH_OPS=1 FORCE_CUDA="$CUDA" PATH="$SCRIPTS:$PATH")
    # mmcv's setup.py builds CUDA ops whenever torch sees a GPU: hide it for a CPU build.
    [[ $CUDA == 1 ]] || BUILD_ENV+=(CUDA_VISIBLE_DEVICES=)
    BUILD_CMD=("$PY" -m pip wheel -v --no-deps --no-build-isolation -w "$WORK/dist" "$SRC")
    kind=$([[ $CUDA == 1 ]] && echo "CUDA + CPU" || echo "CPU-only")
    if [[ $DRY_RUN == 1 ]]; then
        trap - EXIT
        log "dry run: $kind build, $JOBS jobs. Source (patched) kept in $SRC. Build command:"
        echo "  env ${BUILD_ENV[*]/#PATH=*/PATH=$SCRIPTS:...} ${BUILD_CMD[*]}"
        exit 0
    fi
    log "building mmcv $MMCV_VERSION ($kind ops, $JOBS jobs, -std=$CXX_STD) against torch $TORCH_VERSION;"
    log "this takes a while: a whole fresh make env-det took 14 minutes on 2 idle cores, up to about 35 on busy ones"
    env "${BUILD_ENV[@]}" "${BUILD_CMD[@]}" || die "building mmcv $MMCV_VERSION failed (output above)"
    WHEEL=$(ls "$WORK"/dist/mmcv-"$MMCV_VERSION"-*.whl) || die "the build produced no wheel in $WORK/dist"
    mkdir -p "$WHEELHOUSE"
    cp -f "$WHEEL" "$WHEELHOUSE/"
    log "built $(basename "$WHEEL"), cached in $WHEELHOUSE"
elif [[ $DRY_RUN == 1 ]]; then
    log "dry run: would install $(basename "$WHEEL") (looked in: ${dirs[*]})"
    exit 0
fi

# --- 3. swap mmcv-lite for mmcv ------------------------------------------------
# Remove mmcv-lite (and any mmcv) first: installing mmcv then removing mmcv-lite
# would delete files that both own.
"$PY" -m pip uninstall --yes mmcv-lite mmcv || die "pip could not uninstall mmcv-lite / mmcv from $PY"
"$PY" -m pip install -c "$CONSTRAINTS" "$WHEEL" || die "pip could not install $WHEEL"

# --- 4. check ------------------------------------------------------------------
status=$(check_mmcv 2>&1) || die "$status
  wheel: $WHEEL
  A wheel only works with the torch it was built against (here torch $TORCH_VERSION).
  Remove it from the wheelhouse, or rebuild: tools/install_mmcv.sh --python $PY --build"
log "done: $status"
