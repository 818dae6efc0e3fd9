"""Install aemim_mm. Tested versions: requirements/constraints.txt (use ``pip -c``).

Extras: ``core`` (mmpretrain stack with mmcv-lite), ``det`` (mmdet; full mmcv
comes from tools/install_mmcv.sh), ``dev`` (tests). See docs/install.md.
"""
import os.path as osp
import re

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version():
    """Read ``__version__`` from aemim_mm/version.py without importing the package."""
    path = osp.join(HERE, 'aemim_mm', 'version.py')
    with open(path, encoding='utf-8') as f:
        match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", f.read(), re.M)
    if match is None:
        raise RuntimeError(f'no __version__ = "..." line in {path}')
    return match.group(1)


def read_requirements(name):
    """Requirement lines of requirements/<name>.txt (comments and blanks dropped)."""
    path = osp.join(HERE, 'requirements', name)
    reqs = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                if line.startswith('-'):
                    raise ValueError(f'{path}: pip options ({line!r}) are not allowed here')
                reqs.append(line)
    return reqs


setup(
    name='aemim_mm',
    version=read_version(),
    description='AEMIM (adversarial examples meet masked image modeling) as an mmpretrain plug-in',
    # projects/ (the mini-reproduction) is experiment code beside the
    # package, run from the checkout: never installed
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools', 'docs',
                                    'projects', 'projects.*')),
    include_package_data=True,
    python_requires='>=3.10',
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'core': read_requirements('core.txt') + read_requirements('mmcv_lite.txt'),
        'det': read_requirements('det.txt'),
        'dev': read_requirements('dev.txt'),
    },
    zip_safe=False,
)
