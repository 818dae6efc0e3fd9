"""compare_attack_precision and tools/attack_precision.py."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aemim_mm.evaluation.attack_precision import compare_attack_precision
from tiny_models import build_wrapper, valid_images

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize('amp_dtype', ['bfloat16', 'float16'])
def test_mixed_precision_attack_stays_close_to_fp32(amp_dtype):
    wrapper = build_wrapper(attack=dict(type='FeatureDistancePGD', eps=4,
                                        steps=2))
    rows = compare_attack_precision(wrapper, valid_images(16, seed=5), None,
                                    amp_dtype, steps=[1, 3])
    assert [r['steps'] for r in rows] == [1, 3]
    for r in rows:
        assert r['dist_fp32'] > r['dist_start'] > 0
        torch.testing.assert_close(
            r['gain_ratio'], (r['dist_amp'] - r['dist_start']) /
            (r['dist_fp32'] - r['dist_start']))
        assert r['gain_ratio'] > 0.9
        assert 0.8 < r['sign_agreement'] <= 1
        assert r['time_fp32_s'] > 0 and r['time_amp_s'] > 0
    assert rows[1]['dist_fp32'] > rows[0]['dist_fp32']    # more steps
    # the attack's own settings are restored
    assert (wrapper.attack.steps, wrapper.attack.amp_dtype) == (2, None)


@pytest.mark.parametrize('kwargs,match', [
    (dict(amp_dtype='bf16'), 'amp_dtype must be one of'),
    (dict(amp_dtype='bfloat16', steps=[0]), 'steps must be ints >= 1'),
    (dict(amp_dtype='bfloat16', steps=[]), 'steps must be ints >= 1'),
])
def test_bad_arguments_raise(kwargs, match):
    wrapper = build_wrapper()
    with pytest.raises(ValueError, match=match):
        compare_attack_precision(wrapper, valid_images(2), None, **kwargs)


def test_rec_distance_is_refused():
    wrapper = build_wrapper(attack=dict(type='FeatureDistancePGD',
                                        distance='rec'))
    with pytest.raises(ValueError, match="needs a feature distance"):
        compare_attack_precision(wrapper, valid_images(2), None, 'bfloat16')


@pytest.mark.slow
def test_tool_on_the_cifar_config(tmp_path: Path):
    out = tmp_path / 'precision.json'
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'attack_precision.py'),
         str(REPO / 'configs' / 'aemim_vit-t-p4_cifar10.py'), '--img-size',
         '32', '--steps', '1', '2', '--out', str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert '| steps | distance at start |' in proc.stdout
    # the table stays readable: no per-parameter initialisation log
    assert 'init_weights' not in proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert [r['steps'] for r in result['rows']] == [1, 2]
    assert len(result['images']) == 8 and result['amp_dtype'] == 'bfloat16'
    for r in result['rows']:
        assert r['dist_fp32'] > r['dist_start']


@pytest.mark.slow
@pytest.mark.parametrize('args,message', [
    (['configs/aemim_vit-t-p4_cifar10.py', '--steps', '0'],
     '--steps must be >= 1'),
    (['configs/nope.py'], "config: no such file 'configs/nope.py'"),
    (['configs/aemim_vit-t-p4_cifar10.py', '--amp-dtype', 'bf16'],
     "invalid choice: 'bf16'"),
    (['configs/mae_vit-t-p4_cifar10.py', '--img-size', '32'],
     'model.type must be AdversarialMIMWrapper'),
])
def test_tool_rejects_bad_arguments(args, message):
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'attack_precision.py'), *args],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout, proc.stderr[-2000:]
