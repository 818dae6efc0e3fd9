"""A survey method's run killed by SIGKILL and resumed continues bit for bit.

The shipped CIFAR-10 configs of RoCL, CLAE, BYORL, AdvCL, AdCo, CaCo and
ADIOS (their random augmentations kept; AdvCL's pseudo-labels from a tiny
local encoder, read from the work dir's cache on resume; AdCo's and CaCo's
banks of 2, their velocity already moving when the run is killed), with a
narrow ResNet-18, and the MIM adversaries' (AdPE: MAE+ with coordinates,
SimMIM-ViT with the embedding, AEMIM + AdPE; learned masks on SimMIM-ViT,
alone and with AEMIM) with a narrow ViT; 4 iterations of batch 2, a
checkpoint after every iteration, ``RNGStateCheckpointHook`` and the
configs' own hooks: run A goes through; run B is killed (SIGKILL) while it
blocks after iteration 2, then resumed with ``tools/train.py --resume``.
Iterations 3 and 4 of B equal A's exactly (every logged loss, the attack's
statistics), and so do the final weights, running statistics (clean and
adversarial), BYOL's target network, MoCo's key encoder, AdCo's and CaCo's
banks and their velocity, ADIOS's masking networks, AdPE's adversarial
state, and the optimizer state (each of ADIOS's two optimizers').
"""
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Dict

import numpy as np
import pytest
import torch
from PIL import Image

from aemim_mm.utils.safe_load import safe_load

from test_reliability_resume import (TEST_HOOKS, by_iter, dumped,
                                     kill_when_blocked)

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN = REPO_ROOT / 'tools' / 'train.py'
MAX_ITERS = 4

#: a narrow network for each config (projector / predictor widths)
NARROW = {
    'rocl_simclr_resnet18_cifar10': "neck=dict(in_channels=64, "
    "hid_channels=32, out_channels=16)",
    'clae_simclr_resnet18_cifar10': "neck=dict(in_channels=64, "
    "hid_channels=32, out_channels=16)",
    'byorl_byol_resnet18_cifar10': "neck=dict(in_channels=64, "
    "hid_channels=32, out_channels=16), head=dict(predictor=dict("
    "in_channels=16, hid_channels=32, out_channels=16))",
    'advcl_simclr_resnet18_cifar10': "neck=dict(in_channels=64, "
    "hid_channels=32, out_channels=16)",
    # a bank of 2: filled at iteration 1, climbing (with momentum) from 2
    'adco_moco_resnet18_cifar10': "neck=dict(in_channels=64, "
    "hid_channels=32, out_channels=16), feat_dim=16, queue_len=2",
    'caco_mocov3_resnet18_cifar10': "neck=dict(in_channels=64, "
    "hid_channels=32, out_channels=16), head=dict(predictor=dict("
    "in_channels=16, hid_channels=32, out_channels=16))",
    # two optimisers (an OptimWrapperDict): both states are compared
    'adios_simclr_resnet18_cifar10': "neck=dict(in_channels=64, "
    "hid_channels=32, out_channels=16)",
}
#: model options beside the algorithm's (AdvCL: two heads, a radius for
#: 32 px)
MODEL_EXTRA = {'advcl_simclr_resnet18_cifar10': ', ks=(2, 3), radius=4',
               # a bank of 2 (filled at iteration 1), no warm-up
               'caco_mocov3_resnet18_cifar10': ', bank_size=2, '
               'memory_warmup_epochs=0',
               # a narrow masking U-Net (base width 8)
               'adios_simclr_resnet18_cifar10': ', mask_net=dict('
               'mask_fbase=8, mlp_channels=16)'}
#: a config's pseudo-label encoder (AdvCL): a tiny local checkpoint, two
#: cluster counts that 8 images allow
PSEUDO_LABELS = ("dict(type='PseudoLabelHook', checkpoint={ckpt!r}, "
                 "backbone=dict(type='ResNet_CIFAR', depth=18, "
                 "stem_channels=8, base_channels=8), ks=(2, 3), "
                 "image_size=32)")

CONFIG = '''
_base_ = [{base!r}]
custom_imports = dict(imports=['aemim_mm', 'reliability_test_hooks'],
                      allow_failed_imports=False)
model = dict(algorithm=dict(
    backbone=dict(stem_channels=8, base_channels=8), {narrow}){model_extra})
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset=dict(data_root={data!r}, data_prefix=''))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop',
                 max_iters={max_iters})
param_scheduler = []
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False,
                    max_keep_ckpts=20))
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed=0, deterministic=True)
custom_hooks = [
    dict(type='RNGStateCheckpointHook'),
    dict(type='SampleSeedHook'),
    dict(type='LossDumpHook'),{extra_hooks}
]
'''


@pytest.fixture(scope='module')
def workspace(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp('survey_resume')
    images = root / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f'{i}.png')
    (root / 'reliability_test_hooks.py').write_text(TEST_HOOKS)
    import aemim_mm  # noqa: F401
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    encoder = MODELS.build(dict(type='ResNet_CIFAR', depth=18,
                                stem_channels=8, base_channels=8))
    ckpt = root / 'encoder.pth'
    torch.save(dict(state_dict={'backbone.' + k: v for k, v in
                                encoder.state_dict().items()}), ckpt)
    return SimpleNamespace(root=root, images=images, encoder=str(ckpt))


def _env(workspace: SimpleNamespace) -> Dict[str, str]:
    path = os.pathsep.join(
        p for p in (str(workspace.root), os.environ.get('PYTHONPATH')) if p)
    return dict(os.environ, OMP_NUM_THREADS='1', OMP_WAIT_POLICY='PASSIVE',
                PYTHONPATH=path)


def _train(workspace, config: str, work_dir: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(TRAIN), config, '--work-dir', str(work_dir),
         *args], cwd=REPO_ROOT, env=_env(workspace), capture_output=True,
        text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'train.py failed:\n{out[-6000:]}'
    return out


def _optimizer_states(saved: dict) -> Dict[str, dict]:
    """Each optimizer's state dict in a checkpoint's ``optimizer`` entry:
    one ``OptimWrapper``'s (key ``''``) or each of an ``OptimWrapperDict``'s
    (by its key: ADIOS's ``encoder`` and ``mask_net``)."""
    if 'state' in saved:
        return {'': saved}
    assert saved and all('state' in v for v in saved.values()), saved.keys()
    return saved


def _killed_run_resumes(workspace, name: str, config: Path) -> tuple:
    """Run A through; run B killed (SIGKILL) while blocked after iteration
    2, then resumed: iterations 3 and 4 log the same values, and the final
    weights, buffers and every optimizer's state are equal. Returns the
    logs by iteration and A's final checkpoint."""
    run_a = workspace.root / f'{name}_a'
    _train(workspace, str(config), run_a)

    blocked = workspace.root / f'{name}_block.py'
    blocked.write_text(
        f'_base_ = [{str(config)!r}]\n'
        'custom_hooks = _base_.custom_hooks + [\n'
        '    dict(type="BlockHook", at=2, priority="LOWEST")]\n')
    run_b = workspace.root / f'{name}_b'
    kill_when_blocked([sys.executable, str(TRAIN), str(blocked),
                       '--work-dir', str(run_b)], run_b, _env(workspace))
    assert not (run_b / 'iter_3.pth').exists()
    out = _train(workspace, str(config), run_b, '--resume')
    assert 'resumed epoch: 0, iter: 2' in out, out[-4000:]

    a, b = by_iter(dumped(run_a)), by_iter(dumped(run_b))
    assert sorted(b) == list(range(1, MAX_ITERS + 1))
    for it in (3, 4):
        for key in (k for k in a[it] if k not in ('pid', 'iter')):
            assert b[it][key] == a[it][key], (name, it, key)
    final_a = safe_load(run_a / 'iter_4.pth')
    final_b = safe_load(run_b / 'iter_4.pth')
    for key, value in final_a['state_dict'].items():
        assert torch.equal(final_b['state_dict'][key], value), (name, key)
    optim_a, optim_b = (_optimizer_states(final_a['optimizer']),
                        _optimizer_states(final_b['optimizer']))
    assert optim_a.keys() == optim_b.keys(), name
    for optim in optim_a:
        state_a, state_b = optim_a[optim]['state'], optim_b[optim]['state']
        assert state_a.keys() == state_b.keys(), (name, optim)
        for group_a, group_b in zip(state_a.values(), state_b.values()):
            for key in group_a:
                assert torch.equal(torch.as_tensor(group_a[key]),
                                   torch.as_tensor(group_b[key])), (
                                       name, optim, key)
    return a, final_a


@pytest.mark.parametrize('name', sorted(NARROW))
def test_killed_run_resumes_bit_for_bit(workspace, name):
    config = workspace.root / f'{name}.py'
    extra = ('\n    ' + PSEUDO_LABELS.format(ckpt=workspace.encoder) + ','
             if name.startswith('advcl') else '')
    config.write_text(CONFIG.format(
        base=str(REPO_ROOT / 'configs' / 'survey' / f'{name}.py'),
        narrow=NARROW[name], data=str(workspace.images),
        max_iters=MAX_ITERS, extra_hooks=extra,
        model_extra=MODEL_EXTRA.get(name, '')))
    logs, _ = _killed_run_resumes(workspace, name, config)
    for it in (3, 4):       # the adversary's statistics are among them
        assert any('adv_' in k for k in logs[it])


#: The MIM adversaries' CIFAR-10 configs with a narrow ViT (AdPE on MAE+
#: and SimMIM-ViT, AEMIM + AdPE; ADIOS-style learned masks on SimMIM-ViT,
#: AEMIM + learned masks): where the algorithm is, and the state entries of
#: the adversary, which climbs from iteration 1
ADPE = {
    'adpe_mae-plus_vit-t-p4_cifar10_coord': ('model',
                                             'adversarial_positions.adv_'),
    'adpe_simmim_vit-t-p4_cifar10_embed': ('model',
                                           'adversarial_positions.adv_'),
    'adpe_aemim_mae-plus_vit-t-p4_cifar10': ('model.algorithm',
                                             'adversarial_positions.adv_'),
    'adios_simmim_vit-t-p4_cifar10': ('model', 'mask_net.'),
    'adios_aemim_simmim_vit-t-p4_cifar10': ('model.algorithm', 'mask_net.'),
}
ADPE_CONFIG = '''
_base_ = [{base!r}]
custom_imports = dict(imports=['aemim_mm', 'reliability_test_hooks'],
                      allow_failed_imports=False)
_narrow = dict(arch=dict(_delete_=True, embed_dims=32, num_layers=1,
                         num_heads=2, feedforward_channels=64))
{narrow}
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset=dict(data_root={data!r}, data_prefix=''))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop',
                 max_iters={max_iters})
param_scheduler = []
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False,
                    max_keep_ckpts=20))
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed=0, deterministic=True)
custom_hooks = _base_.custom_hooks + [
    dict(type='RNGStateCheckpointHook'),
    dict(type='LossDumpHook'),
]
'''
#: the narrow encoder (and decoder) at ``model`` or ``model.algorithm``
ADPE_NARROW = {
    'model': "model = dict(backbone=_narrow, {neck})",
    'model.algorithm': "model = dict(algorithm=dict(backbone=_narrow, "
    "{neck}))",
}
NECKS = {'simmim': "neck=dict(in_channels=32)",
         'mae': "neck=dict(embed_dim=32, decoder_embed_dim=16, "
         "decoder_depth=1, decoder_num_heads=2)"}


@pytest.mark.parametrize('name', sorted(ADPE))
def test_killed_mim_adversary_run_resumes_bit_for_bit(workspace, name):
    """As above for the MIM adversaries: the adversary (AdPE's state, the
    masking network), its AdamW moments and the network continue exactly;
    the adversary's entries are in the checkpoint."""
    where, entries = ADPE[name]
    neck = NECKS['simmim' if 'simmim' in name else 'mae']
    config = workspace.root / f'{name}.py'
    config.write_text(ADPE_CONFIG.format(
        base=str(REPO_ROOT / 'configs' / 'survey' / f'{name}.py'),
        narrow=ADPE_NARROW[where].format(neck=neck),
        data=str(workspace.images), max_iters=MAX_ITERS))
    _, final = _killed_run_resumes(workspace, name, config)
    state = [k for k in final['state_dict'] if entries in k]
    assert state and any(final['state_dict'][k].any() for k in state)
