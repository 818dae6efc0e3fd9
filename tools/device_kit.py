"""Fill ``.devkit/`` with what the lent GPU machine needs and does not have.

The GPU machine (docs/device_run.md) runs Python 3.12 with torch,
torchvision, timm, numpy, opencv, matplotlib, scikit-image, scipy and
scikit-learn, offline, with NO mmengine, mmpretrain or mmcv. Only the
project's working tree travels (64 MiB, git-ignored folders only when the
run names them). This script puts into one git-ignored folder:

* ``wheels/``: pure-Python wheels of the packages the run imports that the
  machine lacks: mmengine, mmpretrain and mmcv-lite at the versions of
  ``requirements/constraints.txt``, timm, setuptools (``pkg_resources``) and
  ART at the pinned versions too, and every dependency of theirs (Requires-Dist
  for Python 3.12 on Linux, followed to the end) that is not in
  :data:`DEVICE_PACKAGES`. Unpinned dependencies get the version installed
  where this script runs (the tested environment), else the registry's
  newest. A package with only a source release is built here into a wheel;
  any wheel that is not pure Python is refused (it could not run on both
  the machine's Python 3.12 and the rehearsal's 3.11);
* ``data/cifar10_jpg.tar.gz``: the CIFAR-10 archive of ``../shared/data``,
  checked against its published sha256;
* ``MANIFEST.json``: every file with its size and sha256, the total, and the
  install line the machine runs (:data:`INSTALL_LINE`).

Usage::

    python tools/device_kit.py [--out .devkit] [--cifar10 PATH]

The package itself travels as the working tree (``PYTHONPATH``), not as a
wheel. ``tools/device_run.sh`` installs the kit and runs the stages.
"""
import argparse
import importlib.metadata
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Dict, Iterable, List, Optional

from packaging.requirements import Requirement

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:   # ``python tools/device_kit.py``
    sys.path.insert(0, REPO_ROOT)
from aemim_mm.datasets.cifar10_archive import (  # noqa: E402
    DEFAULT_SRC as DEFAULT_CIFAR10, SHA256 as CIFAR10_SHA256, sha256sum)

CONSTRAINTS = osp.join(REPO_ROOT, 'requirements', 'constraints.txt')
DEFAULT_OUT = osp.join(REPO_ROOT, '.devkit')
#: What travels at most in one device call (working tree and carried paths).
TRAVEL_LIMIT = 64 * 2**20

#: The packages the device run imports, always carried at the versions of
#: requirements/constraints.txt (timm and setuptools too, although the
#: machine has some version of them: the run then uses the tested one).
ROOTS = ('mmengine', 'mmpretrain', 'mmcv-lite', 'timm', 'setuptools',
         'adversarial-robustness-toolbox')

#: Python packages on the GPU machine's image (the device tool's KINDS.md,
#: read 2026-11-17), normalised names. A dependency in this set is not
#: carried.
DEVICE_PACKAGES = frozenset("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc
anyio attrs botorch build certifi charset-normalizer chex click cloudpickle
cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils
execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec
gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt
jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader
lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath
msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx
ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti
nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink
nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy
portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest
pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
safetensors scikit-build-core scikit-image scikit-learn scipy seaborn
sentencepiece sentence-transformers setuptools shellingham simplejson six
sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics
torchvision tqdm transformers treescope triton typer typing-extensions
typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray
xxhash yarl zipp
""".split())
#: A requirement satisfied on the machine by a package of another name.
PROVIDED_AS = {'opencv-python': 'opencv-python-headless'}
#: The environment the Requires-Dist markers are evaluated in.
DEVICE_MARKERS = dict(python_version='3.12', python_full_version='3.12.3',
                      sys_platform='linux', platform_system='Linux',
                      platform_machine='x86_64', os_name='posix',
                      implementation_name='cpython',
                      platform_python_implementation='CPython', extra='')
PLATFORMS = ('manylinux_2_28_x86_64', 'manylinux_2_17_x86_64',
             'manylinux2014_x86_64', 'manylinux1_x86_64')
#: Run on the machine in the repository root; ``$SITE`` is a fresh folder.
INSTALL_LINE = ('python3 -m pip install -q --no-index --no-deps --no-compile '
                '--no-cache-dir --upgrade --target "$SITE" '
                '.devkit/wheels/*.whl && export PYTHONPATH="$SITE:$PWD"')


def normalize(name: str) -> str:
    """A distribution name as PEP 503 normalises it."""
    return re.sub(r'[-_.]+', '-', name).lower()


def read_constraints(path: str = CONSTRAINTS) -> Dict[str, str]:
    """``name -> version`` of every ``name==version`` line of ``path``."""
    pins = {}
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if '==' in line:
                name, version = line.split('==', 1)
                pins[normalize(name)] = version.strip()
    return pins


def wheel_requirements(wheel: str) -> List[Requirement]:
    """The wheel's Requires-Dist that apply on the machine (no extras)."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist()
                    if n.endswith('.dist-info/METADATA'))
        text = zf.read(meta).decode('utf-8')
    reqs = []
    for line in text.splitlines():
        if not line.startswith('Requires-Dist:'):
            continue
        req = Requirement(line.split(':', 1)[1].strip())
        if req.marker is None or req.marker.evaluate(DEVICE_MARKERS):
            reqs.append(req)
    return reqs


def is_pure(wheel: str) -> bool:
    """Whether a wheel file name is tagged ``py3-none-any`` (or py2.py3)."""
    tags = osp.basename(wheel)[:-len('.whl')].split('-')[-3:]
    return (tags[1:] == ['none', 'any']
            and 'py3' in tags[0].split('.'))


def needed_on_device(name: str) -> bool:
    """Whether the machine lacks ``name`` (a ROOT is always carried)."""
    name = normalize(name)
    if name in ROOTS:
        return True
    return (name not in DEVICE_PACKAGES
            and PROVIDED_AS.get(name) not in DEVICE_PACKAGES)


def pinned_spec(name: str, pins: Dict[str, str]) -> str:
    """``name==version``: the constraint, else the installed version, else
    just the name (the registry's newest)."""
    name = normalize(name)
    if name in pins:
        return f'{name}=={pins[name]}'
    try:
        return f'{name}=={importlib.metadata.version(name)}'
    except importlib.metadata.PackageNotFoundError:
        return name


def fetch_wheel(spec: str, dest: str, pip: Iterable[str]) -> str:
    """Download a Python 3.12 wheel of ``spec`` into ``dest`` (build it from
    the source release when the registry has no wheel); return its path.

    Raises:
        RuntimeError: If no wheel can be had, or it is not pure Python.
    """
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [*pip, 'download', '--no-deps', '--only-binary=:all:',
               '--python-version', '3.12', '--implementation', 'cp',
               '--disable-pip-version-check', '-q', '-d', tmp, spec]
        for platform in PLATFORMS:
            cmd[-1:-1] = ['--platform', platform]
        got = subprocess.run(cmd, capture_output=True, text=True)
        if got.returncode != 0:   # only a source release: build it here
            got = subprocess.run(
                [*pip, 'wheel', '--no-deps', '--no-binary=:all:', '-q',
                 '--disable-pip-version-check', '-w', tmp, spec],
                capture_output=True, text=True)
        wheels = [f for f in os.listdir(tmp) if f.endswith('.whl')]
        if got.returncode != 0 or len(wheels) != 1:
            raise RuntimeError(f'device_kit: no wheel for {spec}: '
                               f'{got.stderr.strip()[-2000:]}')
        if not is_pure(wheels[0]):
            raise RuntimeError(
                f'device_kit: {wheels[0]} is not pure Python (py3-none-any);'
                ' it could not run on the machine\'s Python 3.12 and the '
                'rehearsal\'s 3.11 alike')
        shutil.move(osp.join(tmp, wheels[0]), osp.join(dest, wheels[0]))
        return osp.join(dest, wheels[0])


def collect_wheels(dest: str, pins: Dict[str, str],
                   pip: Iterable[str]) -> List[str]:
    """The ROOTS and their dependencies the machine lacks, as wheels."""
    os.makedirs(dest, exist_ok=True)
    queue, seen = list(ROOTS), set()
    paths = []
    while queue:
        name = normalize(queue.pop(0))
        if name in seen or not needed_on_device(name):
            continue
        seen.add(name)
        spec = pinned_spec(name, pins)
        print(f'device_kit: {spec}', flush=True)
        path = fetch_wheel(spec, dest, pip)
        paths.append(path)
        queue += [r.name for r in wheel_requirements(path)]
    return paths


def tracked_bytes(repo: str = REPO_ROOT) -> Optional[int]:
    """Bytes of the git-tracked files (what travels besides the kit), or
    ``None`` outside a git checkout."""
    got = subprocess.run(['git', '-C', repo, 'ls-files', '-z'],
                         capture_output=True)
    if got.returncode != 0:
        return None
    total = 0
    for name in got.stdout.decode().split('\0'):
        path = osp.join(repo, name)
        if name and osp.isfile(path):
            total += osp.getsize(path)
    return total


def manifest(out: str, tree_bytes: Optional[int]) -> dict:
    """Every kit file with size and sha256, and the travel size check.

    Raises:
        RuntimeError: If the kit and the tracked tree exceed
            :data:`TRAVEL_LIMIT`.
    """
    files = []
    for folder in ('wheels', 'data'):
        for name in sorted(os.listdir(osp.join(out, folder))):
            path = osp.join(out, folder, name)
            files.append(dict(path=f'{folder}/{name}',
                              bytes=osp.getsize(path),
                              sha256=sha256sum(path)))
    kit = sum(f['bytes'] for f in files)
    total = kit + (tree_bytes or 0)
    if total > TRAVEL_LIMIT:
        raise RuntimeError(
            f'device_kit: kit {kit / 2**20:.1f} MiB + tracked tree '
            f'{(tree_bytes or 0) / 2**20:.1f} MiB exceed the '
            f'{TRAVEL_LIMIT / 2**20:.0f} MiB a device call carries')
    return dict(files=files, kit_bytes=kit, tree_bytes=tree_bytes,
                travel_limit_bytes=TRAVEL_LIMIT, install_line=INSTALL_LINE,
                python=sys.version.split()[0])


def build_kit(out: str = DEFAULT_OUT, cifar10: str = DEFAULT_CIFAR10,
              pip: Optional[List[str]] = None) -> dict:
    """Build the kit into ``out`` (replacing it) and return the manifest.

    Raises:
        FileNotFoundError: If the CIFAR-10 archive is missing.
        ValueError: If its sha256 is not the published one.
    """
    if not osp.isfile(cifar10):
        raise FileNotFoundError(
            f'device_kit: CIFAR-10 archive not found: {cifar10} (pass '
            '--cifar10 PATH to cifar10_jpg.tar.gz)')
    digest = sha256sum(cifar10)
    if digest != CIFAR10_SHA256:
        raise ValueError(f'device_kit: {cifar10} has sha256 {digest}, '
                         f'expected {CIFAR10_SHA256}')
    pip = pip or [sys.executable, '-m', 'pip']
    tmp = out.rstrip('/') + '.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    collect_wheels(osp.join(tmp, 'wheels'), read_constraints(), pip)
    os.makedirs(osp.join(tmp, 'data'))
    shutil.copyfile(cifar10, osp.join(tmp, 'data', 'cifar10_jpg.tar.gz'))
    info = manifest(tmp, tracked_bytes())
    with open(osp.join(tmp, 'MANIFEST.json'), 'w') as f:
        json.dump(info, f, indent=2)
    shutil.rmtree(out, ignore_errors=True)   # only once the new kit is whole
    os.replace(tmp, out)
    return info


def main(argv: Optional[List[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=DEFAULT_OUT,
                        help='kit folder (default .devkit, git-ignored)')
    parser.add_argument('--cifar10', default=DEFAULT_CIFAR10,
                        help='cifar10_jpg.tar.gz (default ../shared/data)')
    args = parser.parse_args(argv)
    info = build_kit(args.out, args.cifar10)
    print(f'device_kit: {len(info["files"])} files, '
          f'{info["kit_bytes"] / 2**20:.1f} MiB in {args.out} (+ tracked '
          f'tree {(info["tree_bytes"] or 0) / 2**20:.1f} MiB, limit '
          f'{TRAVEL_LIMIT / 2**20:.0f} MiB)')
    print(f'on the device: SITE=$(mktemp -d); {INSTALL_LINE}')
    return info


if __name__ == '__main__':
    main()
