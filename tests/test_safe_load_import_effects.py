"""``docs/import_effects.md`` lists everything ``import aemim_mm`` changes.

A fresh interpreter imports the dependencies (mmengine, torch, all of
mmpretrain's components), records mmengine's checkpoint loaders, torch's
``weights_only`` allow-list and every registry, imports ``aemim_mm`` and
reports what changed; the tests compare that with the tables of the page.
"""
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = REPO_ROOT / 'docs' / 'import_effects.md'

#: Prints, as JSON, what ``import aemim_mm`` changed in a fresh interpreter.
_EFFECTS_SCRIPT = r'''
import json
import torch
from mmengine.registry import Registry
from mmengine.runner import CheckpointLoader
from mmengine.runner import checkpoint as ckpt_module
import mmpretrain.registry as registries
# mmpretrain's own registrations happen before the snapshot
import mmpretrain.datasets, mmpretrain.engine, mmpretrain.evaluation
import mmpretrain.models, mmpretrain.visualization


def name(item):
    if isinstance(item, tuple):
        return item[1]
    return f'{item.__module__}.{item.__qualname__}'


def registry_key(var):
    if var.startswith('MMENGINE_'):
        return 'mmengine.registry.' + var[len('MMENGINE_'):]
    return 'mmpretrain.registry.' + var


regs = {registry_key(v): r for v, r in vars(registries).items()
        if isinstance(r, Registry)}
before = dict(
    schemes=dict(CheckpointLoader._schemes),
    module=dict(vars(ckpt_module)),
    safe={name(i): i for i in torch.serialization.get_safe_globals()},
    regs={k: dict(r.module_dict) for k, r in regs.items()})

import aemim_mm  # noqa: E402

out = dict(
    schemes={k: f'{v.__module__}.{v.__qualname__}'
             for k, v in CheckpointLoader._schemes.items()
             if before['schemes'].get(k) is not v},
    module={k: f'{v.__module__}.{v.__qualname__}'
            for k, v in vars(ckpt_module).items()
            if k in before['module'] and before['module'][k] is not v},
    # torch registers classes of its own submodules when they are imported
    safe=sorted(n for n, i in ((name(i), i) for i in
                               torch.serialization.get_safe_globals())
                if n not in before['safe'] and not n.startswith('torch.')),
    replaced=sorted(f'{k}.{n}' for k, r in regs.items()
                    for n, obj in r.module_dict.items()
                    if n in before['regs'][k]
                    and before['regs'][k][n] is not obj),
    added={k: sorted(n for n in r.module_dict if n not in before['regs'][k]
                     and r.module_dict[n].__module__.startswith('aemim_mm'))
           for k, r in regs.items()})
out['added'] = {k: v for k, v in out['added'].items() if v}
print(json.dumps(out))
'''


@pytest.fixture(scope='module')
def effects() -> Dict:
    proc = subprocess.run([sys.executable, '-c', _EFFECTS_SCRIPT],
                          capture_output=True, text=True, timeout=300,
                          cwd=str(REPO_ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _section(marker: str) -> str:
    """The text between ``<!-- import-effects:MARKER -->`` and its end."""
    match = re.search(
        rf'<!-- import-effects:{marker} -->(.*?)'
        rf'<!-- /import-effects:{marker} -->', DOC.read_text(), re.S)
    assert match, f'{DOC} lost its import-effects:{marker} table'
    return match.group(1)


def _rows(marker: str) -> List[List[str]]:
    """The backticked names of each data row of a marked table."""
    rows = []
    for line in _section(marker).splitlines():
        if line.startswith('|') and not line.startswith('|---'):
            cells = line.strip('|').split('|')
            rows.append([re.findall(r'`([^`]+)`', c) for c in cells])
    return rows[1:]     # below the header


@pytest.mark.slow     # the effects fixture: a fresh interpreter
def test_mmengine_loaders_in_the_doc(effects: Dict) -> None:
    # the first cell names what changed, the third what it is now
    documented = {row[0][0]: row[2][0] for row in _rows('mmengine')}
    assert set(effects['schemes']) == {''}
    changed = {'CheckpointLoader': effects['schemes']['']}
    changed.update({f'mmengine.runner.checkpoint.{k}': v
                    for k, v in effects['module'].items()})
    assert changed == documented


@pytest.mark.slow     # the effects fixture: a fresh interpreter
def test_safe_globals_in_the_doc(effects: Dict) -> None:
    documented: Set[str] = {
        name for row in _rows('safe-globals') for name in row[0]}
    assert set(effects['safe']) == documented


@pytest.mark.slow     # the effects fixture: a fresh interpreter
def test_registries_in_the_doc(effects: Dict) -> None:
    documented = {row[0][0]: sorted(row[1]) for row in _rows('registries')}
    assert effects['added'] == documented
    assert effects['replaced'] == []     # the page says nothing is replaced


def test_readme_links_the_page() -> None:
    assert '(docs/import_effects.md)' in (REPO_ROOT / 'README.md').read_text()
