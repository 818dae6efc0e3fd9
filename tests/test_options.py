"""Every bad option value of docs/options.md raises at build time.

The cases are READ from the "Bad values" table of ``docs/options.md`` (one
test case per row), so the documentation and the test cannot drift apart.
The components are built through their registries with one bad value on top
of a valid configuration; nothing is trained and no data is loaded.
"""
import ast
import builtins
import copy
import inspect
import math
import re
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Set

import pytest
from mmengine.registry import init_default_scope

import aemim_mm  # noqa: F401  (registers the components)
from mmpretrain.registry import DATASETS, HOOKS, MODELS, TRANSFORMS

from module_loader import load_tiny_models

REPO_ROOT = Path(__file__).resolve().parents[1]
OPTIONS_MD = REPO_ROOT / 'docs' / 'options.md'

#: Arguments that are documented as inherited, not as rows of the tables.
INHERITED = {'self', 'init_cfg', 'pipeline', 'test_mode', 'lazy_init'}


TINY = load_tiny_models()

#: Registry and a valid, cheap configuration of each documented component.
VALID: Dict[str, tuple] = {
    'AdversarialMIMWrapper': (MODELS, dict(algorithm=TINY.mae_cfg())),
    'FeatureDistancePGD': (MODELS, {}),
    'FeatureDistancePGDHook': (HOOKS, {}),
    'LossCurveHook': (HOOKS, {}),
    'SkimagePhotos': (DATASETS, dict(names=['astronaut'])),
    'TimmMAEViT': (MODELS, dict(arch='deit-tiny', img_size=32,
                                patch_size=8)),
    'LoadImageFromFileOrSkip': (TRANSFORMS, {}),
    'SkipCounterHook': (HOOKS, {}),
    'ReproducibleRandomnessHook': (HOOKS, {}),
    'RNGStateCheckpointHook': (HOOKS, {}),
    'SampleSeedHook': (HOOKS, {}),
}


class Row(NamedTuple):
    """One row of the bad-values table."""
    component: str
    option: str
    value: Any
    error: type
    match: str
    checked: str
    source: str  # the bad value as written


def _cell(text: str) -> str:
    """A table cell without its code quotes (`` `x` `` or `` ``x`` ``)."""
    text = text.strip()
    for q in ('``', '`'):
        if len(text) >= 2 * len(q) and text.startswith(q) and text.endswith(
                q):
            return text[len(q):-len(q)].strip()
    return text


def _literal(text: str) -> Any:
    """``ast.literal_eval`` plus ``float('nan')`` / ``float('inf')``."""
    special = {"float('nan')": math.nan, "float('inf')": math.inf,
               "float('-inf')": -math.inf}
    return special[text] if text in special else ast.literal_eval(text)


def _table_lines(text: str) -> List[List[str]]:
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('|') and not set(line) <= set('|-: '):
            rows.append([c for c in line.strip('|').split('|')])
    return rows


def read_bad_values() -> List[Row]:
    text = OPTIONS_MD.read_text()
    block = re.search(r'<!-- bad-values:begin -->(.*?)<!-- bad-values:end -->',
                      text, re.S)
    assert block, f'{OPTIONS_MD}: no bad-values block'
    lines = _table_lines(block.group(1))
    header = [_cell(c) for c in lines[0]]
    assert header == ['component', 'option', 'bad value', 'error', 'match',
                      'checked'], header
    rows = []
    for cells in lines[1:]:
        assert len(cells) == len(header), cells
        comp, opt, value, error, match, checked = [_cell(c) for c in cells]
        rows.append(Row(comp, opt, _literal(value), getattr(builtins, error),
                        match, checked, value))
    return rows


def read_documented_options() -> Dict[str, List[str]]:
    """``{component: [option, ...]}`` from the per-component tables."""
    text = OPTIONS_MD.read_text().split('<!-- bad-values:begin -->')[0]
    out: Dict[str, List[str]] = {}
    for part in re.split(r'^### ', text, flags=re.M)[1:]:
        name = _cell(part.splitlines()[0])
        lines = _table_lines(part)
        assert [_cell(c) for c in lines[0]][:2] == ['option', 'type'], name
        out[name] = [_cell(cells[0]) for cells in lines[1:]]
    return out


BAD_VALUES = read_bad_values()
DOCUMENTED = read_documented_options()


def _param(row: Row):
    marks = []
    if row.checked != 'yes':
        assert row.checked.startswith('no: '), row.checked
        marks.append(pytest.mark.xfail(strict=True, reason=row.checked[4:]))
    return pytest.param(row, marks=marks,
                        id=f'{row.component}-{row.option}={row.source}')


def _signature_options(component: str) -> Set[str]:
    registry, _ = VALID[component]
    cls = registry.get(component)
    params = inspect.signature(cls.__init__).parameters.values()
    return {
        p.name
        for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    } - INHERITED


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmpretrain')


@pytest.mark.parametrize('row', [_param(r) for r in BAD_VALUES])
def test_bad_value_raises_at_build(row: Row) -> None:
    registry, valid = VALID[row.component]
    cfg = copy.deepcopy(valid)
    cfg.update({'type': row.component, row.option: row.value})
    with pytest.raises(row.error) as info:
        registry.build(cfg)
    # the option (or the value that is wrong) and what is allowed
    message = str(info.value)
    assert re.search(row.match, message), \
        f'{row.match!r} not found in: {message}'


def test_the_valid_configurations_build() -> None:
    # control: the bad value, not the base configuration, makes a case fail
    for component, (registry, valid) in VALID.items():
        obj = registry.build(dict(copy.deepcopy(valid), type=component))
        assert type(obj).__name__ == component


def test_options_table_matches_the_code() -> None:
    assert set(DOCUMENTED) == set(VALID), 'components of docs/options.md'
    for component, options in DOCUMENTED.items():
        assert len(options) == len(set(options)), component
        assert set(options) == _signature_options(component), component


def test_every_option_has_a_bad_value_row() -> None:
    rows: Dict[str, Set[str]] = {c: set() for c in VALID}
    unknown: Dict[str, Set[str]] = {c: set() for c in VALID}
    for row in BAD_VALUES:
        assert row.component in VALID, row
        if row.option in DOCUMENTED[row.component]:
            rows[row.component].add(row.option)
        else:  # not an argument: the unknown-name case
            assert row.error is TypeError and 'unexpected keyword' in \
                row.match, row
            unknown[row.component].add(row.option)
    for component, options in DOCUMENTED.items():
        assert rows[component] == set(options), component
        assert unknown[component], f'{component}: no unknown-option row'
