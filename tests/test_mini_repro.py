"""Mini-reproduction (tools/mini_repro.py, aemim_repro).

The end-to-end test runs the whole `smoke` preset once (a subprocess,
OMP_NUM_THREADS=1; about 2 minutes on 2 cores) and checks the table (md +
json) and the plots; a second run of the same command must skip every stage.
The other tests are quick unit tests of the preset checks, the statistics and
the equal-wall-time epoch count.
"""
import copy
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aemim_repro import (encoders, equal_time_epochs, load_preset, stat,
                         validate_preset)
from aemim_repro.pipeline import run_pipeline

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOL = REPO_ROOT / 'tools' / 'mini_repro.py'
NUMBER = r'-?\d+(?:\.\d+)?'
CELL = re.compile(rf'^{NUMBER}( ± {NUMBER})?$')


def _env():
    env = dict(os.environ, OMP_NUM_THREADS='1', OMP_WAIT_POLICY='PASSIVE',
               PYTHONPATH=str(REPO_ROOT))
    return env


# ------------------------------------------------------------------ presets
@pytest.mark.parametrize('name', ['smoke', 'gpu'])
def test_presets_load(name):
    preset = load_preset(name, str(REPO_ROOT))
    assert preset['preset_name'] == name
    assert preset['methods'] == ['mae', 'fast_aemim', 'aemim']
    if name == 'gpu':
        assert preset['pretrain']['epochs'] >= 100
        assert preset['model'] == dict(encoder_layers=None,
                                       decoder_depth=None)
        assert len(preset['seeds']) == 3 and not preset['smoke']
    else:
        assert preset['smoke']


def test_preset_seeds_override():
    assert load_preset('smoke', str(REPO_ROOT), seeds=[7])['seeds'] == [7]


def test_unknown_preset():
    with pytest.raises(FileNotFoundError, match=r"'nope'.*\['gpu', "
                       r"'smoke'\]"):
        load_preset('nope', str(REPO_ROOT))


@pytest.mark.parametrize('path, value, match', [
    (('methods', ), ['mae', 'simmim'], r'methods must be .*fast_aemim'),
    (('methods', ), [], r'methods must be a non-empty'),
    (('seeds', ), [0, 0], r'seeds must be .*distinct'),
    (('seeds', ), [-1], r'seeds must be'),
    (('data', 'train_per_class'), 0, r'data.train_per_class must be an int '
     r'>= 1 or None'),
    (('pretrain', 'epochs'), 0, r'pretrain.epochs must be an int >= 1'),
    (('pretrain', 'warmup_epochs'), 5, r'pretrain.warmup_epochs must be < '),
    (('finetune', 'batch_size'), 1.5, r'finetune.batch_size must be an int'),
    (('pretrain', 'amp'), 'yes', r'pretrain.amp must be True or False'),
    (('equal_time', 'targets'), ['mae'], r'equal_time.targets must be'),
    (('evaluate', 'robustness_on'), ['test'],
     r'evaluate.robustness_on must be a list'),
    (('evaluate', 'corruption', 'corruptions'), ['rain'],
     r'evaluate.corruption.corruptions must be None'),
    (('evaluate', 'corruption', 'severities'), [0, 6],
     r'severities must be a non-empty list from 1..5'),
    (('evaluate', 'adversarial', 'fgsm_eps'), [0, 2],
     r'fgsm_eps must be a non-empty list of finite numbers > 0'),
    (('evaluate', 'adversarial', 'pgd_eps'), [float('nan')],
     r'pgd_eps must be'),
    (('evaluate', 'adversarial', 'pgd_steps'), 0, r'pgd_steps must be'),
])
def test_validate_preset_rejects(path, value, match):
    preset = copy.deepcopy(load_preset('smoke', str(REPO_ROOT)))
    node = preset
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ValueError, match=match):
        validate_preset(preset)


@pytest.mark.parametrize('section, key', [(None, 'colour'),
                                          ('pretrain', 'lr')])
def test_validate_preset_unknown_keys(section, key):
    preset = copy.deepcopy(load_preset('smoke', str(REPO_ROOT)))
    (preset if section is None else preset[section])[key] = 1
    with pytest.raises(ValueError, match=rf"unknown keys \['{key}'\]"):
        validate_preset(preset)


def test_missing_data_fails_before_work(tmp_path):
    preset = load_preset('smoke', str(REPO_ROOT))
    out = tmp_path / 'out'
    with pytest.raises(FileNotFoundError, match='CIFAR-10 not found'):
        run_pipeline(preset, str(out), data_root=str(tmp_path / 'nothing'))
    assert not out.exists()


# ------------------------------------------------------------- arithmetic
@pytest.mark.parametrize('values', [[1.0, 2.0, 4.0], [3.5, 3.5], [7.0]])
def test_stat(values):
    s = stat(values)
    t = torch.tensor(values, dtype=torch.float64)
    torch.testing.assert_close(s['mean'], t.mean().item())
    expected_std = t.std(unbiased=True).item() if len(values) > 1 else 0.0
    torch.testing.assert_close(s['std'], expected_std)
    assert s['n'] == len(values) and s['values'] == values


@pytest.mark.parametrize('values', [[], [1.0, float('inf')]])
def test_stat_rejects(values):
    with pytest.raises(ValueError, match='need finite values'):
        stat(values)


@pytest.mark.parametrize('target, mae, expected', [
    (30.0, [10.0, 10.0], 3),    # AEMIM at 3x MAE's cost
    (14.0, [9.0, 11.0], 1),     # 1.4 -> 1
    (16.0, [10.0], 2),          # 1.6 -> 2
    (1.0, [10.0], 1),           # never 0 epochs
])
def test_equal_time_epochs(target, mae, expected):
    assert equal_time_epochs(target, mae) == expected


@pytest.mark.parametrize('target, mae, match', [
    (10.0, [], 'mae_epoch_seconds'), (10.0, [0.0], 'mae_epoch_seconds'),
    (0.0, [1.0], 'target_seconds')])
def test_equal_time_epochs_rejects(target, mae, match):
    with pytest.raises(ValueError, match=match):
        equal_time_epochs(target, mae)


# --------------------------------------------------------------- end to end
@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory):
    """Run the smoke preset once; returns (out_dir, stdout)."""
    out = tmp_path_factory.mktemp('mini_repro') / 'smoke'
    proc = subprocess.run(
        [sys.executable, str(TOOL), '--preset', 'smoke', '--out-dir',
         str(out)], cwd=REPO_ROOT, env=_env(), capture_output=True,
        text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def _numbers(node, path='$'):
    """Every number in a JSON tree, with its path."""
    if isinstance(node, bool):
        return
    if isinstance(node, (int, float)):
        yield path, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _numbers(v, f'{path}.{k}')
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _numbers(v, f'{path}[{i}]')


@pytest.mark.slow
def test_smoke_table_json(smoke_run):
    out, _ = smoke_run
    res = json.loads((out / 'results.json').read_text())
    preset = load_preset('smoke', str(REPO_ROOT))
    assert res['smoke'] is True
    assert set(res['encoders']) == set(encoders(preset))
    numbers = list(_numbers(res))
    assert numbers
    bad = [(p, v) for p, v in numbers if not math.isfinite(v)]
    assert not bad, bad
    eps = [f'{e:g}' for e in preset['evaluate']['adversarial']['pgd_eps']]
    for enc, agg in res['encoders'].items():
        m = agg['metrics']
        for key in (['finetune/clean_top1', 'linprobe/clean_top1',
                     'finetune/corruption_mean'] +
                    [f'finetune/{a}/{e}' for a in ('fgsm', 'pgd')
                     for e in eps]):
            assert m[key]['n'] == len(preset['seeds']), (enc, key)
            assert 0.0 <= m[key]['mean'] <= 100.0, (enc, key)
        assert agg['wall_s']['pretrain']['mean'] > 0
    # equal wall time: MAE's epochs follow from the measured epoch times
    for target in preset['equal_time']['targets']:
        for seed, run in res['per_seed'][f'mae_eqtime_{target}'].items():
            target_s = sum(res['per_seed'][target][seed]['pretrain'][
                'epoch_seconds'])
            mae_s = res['per_seed']['mae'][seed]['pretrain']['epoch_seconds']
            assert run['pretrain']['epochs'] == equal_time_epochs(
                target_s, mae_s)
            torch.testing.assert_close(run['pretrain']['target_seconds'],
                                       target_s)


@pytest.mark.slow
def test_smoke_table_markdown(smoke_run):
    out, _ = smoke_run
    md = (out / 'results.md').read_text()
    assert 'SMOKE RUN' in md and 'NOT evidence' in md
    assert 'python tools/mini_repro.py --preset smoke' in md
    assert 'machine:' in md and 'SHALLOWER' in md
    for title in ('## Equal pre-training epochs', '## Equal pre-training '
                  'wall time', '## Wall time per stage'):
        assert title in md
    rows = [line for line in md.splitlines() if line.startswith('| ')]
    body = [r for r in rows if not r.startswith('| encoder |')]
    assert len(body) >= 3 * 2 + 4 * 2 + 5   # the tables' rows
    for row in body:
        cells = [c.strip() for c in row.strip('|').split('|')][1:]
        assert cells and all(CELL.match(c) for c in cells), row


@pytest.mark.slow
def test_smoke_plots_and_curves(smoke_run):
    from PIL import Image
    out, _ = smoke_run
    for name in ('loss_curves.png', 'accuracy_vs_eps.png'):
        with Image.open(out / name) as img:
            assert img.size[0] > 300 and img.size[1] > 200
    curves = json.loads((out / 'runs' / 'seed0' / 'aemim' / 'pretrain' /
                         'loss_curves.json').read_text())['records']
    assert curves['rec_clean']['value'] and curves['rec_adv']['value']
    mae = json.loads((out / 'runs' / 'seed0' / 'mae' / 'pretrain' /
                      'loss_curves.json').read_text())['records']
    assert mae['loss']['value'] and not mae['rec_adv']['value']


@pytest.mark.slow
def test_smoke_progress_and_resume(smoke_run):
    out, stdout = smoke_run
    assert re.search(r'stage 3/\d+ pretrain mae seed 0 .*ETA', stdout)
    before = json.loads((out / 'results.json').read_text())['encoders']
    proc = subprocess.run(
        [sys.executable, str(TOOL), '--preset', 'smoke', '--out-dir',
         str(out)], cwd=REPO_ROOT, env=_env(), capture_output=True,
        text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ' stage ' in ln]
    assert lines and all('skipped' in ln for ln in lines), lines
    after = json.loads((out / 'results.json').read_text())['encoders']
    assert after == before


# ------------------------------------------------------------ EpochTimeHook
class _FakeRunner:
    def __init__(self, work_dir, epoch=0):
        self.work_dir, self.epoch = str(work_dir), epoch


def test_epoch_time_hook_records_and_resumes(tmp_path):
    from aemim_repro import EpochTimeHook
    hook = EpochTimeHook()
    runner = _FakeRunner(tmp_path)
    hook.before_train(runner)
    for epoch in range(3):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        hook.after_train_epoch(runner)
    saved = json.loads((tmp_path / 'epoch_times.json').read_text())
    assert saved['epoch'] == [1, 2, 3]
    assert all(s >= 0 for s in saved['seconds'])
    torch.testing.assert_close(saved['cumulative'][-1],
                               sum(saved['seconds']))
    # resumed after epoch 2: epoch 3's entry is dropped, then re-recorded
    resumed = EpochTimeHook()
    runner.epoch = 2
    resumed.before_train(runner)
    assert resumed.records['epoch'] == [1, 2]
    resumed.before_train_epoch(runner)
    resumed.after_train_epoch(runner)
    saved = json.loads((tmp_path / 'epoch_times.json').read_text())
    assert saved['epoch'] == [1, 2, 3]


@pytest.mark.parametrize('name', ['', 'a/b.json', 3])
def test_epoch_time_hook_rejects_file_name(name):
    from aemim_repro import EpochTimeHook
    with pytest.raises(ValueError, match='file_name must be a file name'):
        EpochTimeHook(file_name=name)
