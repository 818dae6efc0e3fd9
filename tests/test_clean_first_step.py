"""AEMIM's clean-first training step, whatever launches the run.

* The configs select ``AEMIMDistributedDataParallel`` themselves, so a run
  launched through mmpretrain's own ``tools/train.py`` (which knows nothing
  of this package) trains with the clean-first step under DDP: checked in a
  2-process gloo run on CPU (``torch.distributed.run``), where a test-only
  hook records the model wrapper's type and the modes the model ran in.
* The step drives ``OptimWrapper`` / ``AmpOptimWrapper`` internals; any other
  optimizer wrapper is refused before the first step computes anything.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper, ApexOptimWrapper, OptimWrapper
from mmengine.optim import OptimWrapperDict
from mmengine.registry import OPTIM_WRAPPERS
from PIL import Image

from aemim_mm.models.optim_support import (SUPPORTED_OPTIM_WRAPPERS,
                                           check_optim_wrapper)

REPO_ROOT = Path(__file__).resolve().parents[1]
BASE_CONFIG = REPO_ROOT / 'configs' / 'aemim_vit-t-p4_cifar10.py'

#: ``configs/aemim_vit-t-p4_cifar10.py`` with a tiny ViT, on a few images.
TINY = '''
_base_ = [{base!r}]
custom_imports = dict(imports=['aemim_mm'{extra_imports}],
                      allow_failed_imports=False)
model = dict(algorithm=dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=32, num_layers=2,
                            num_heads=2, feedforward_channels=64)),
    neck=dict(embed_dim=32, decoder_embed_dim=16, decoder_depth=1,
              decoder_num_heads=2, mlp_ratio=2.)))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset=dict(data_root={data!r}, data_prefix='', with_label=False))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={iters})
param_scheduler = []
default_hooks = dict(checkpoint=None,
                     logger=dict(type='LoggerHook', interval=1))
log_processor = dict(by_epoch=False, window_size=1)
'''


@pytest.fixture(scope='module')
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 random 40 x 40 RGB PNG files."""
    root = tmp_path_factory.mktemp('clean_first_images')
    rng = np.random.default_rng(0)
    for i in range(8):
        pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f'{i}.png')
    return root


# ---------------------------------------------------------------- launchers
#: Test-only hook: the model wrapper's type and, per iteration, the modes in
#: which the model's forward ran ('loss': one pass, mmengine's DDP step;
#: 'clean' then 'adversarial': the clean-first step).
PROBE = '''
import json
import os

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class StepProbeHook(Hook):

    def before_train(self, runner):
        model = runner.model
        module = model.module if is_model_wrapper(model) else model
        self.record = dict(wrapper=type(model).__name__, modes=[])
        self.modes = []
        forward = module.forward

        def probe(*args, mode='tensor', **kwargs):
            self.modes.append(mode)
            return forward(*args, mode=mode, **kwargs)

        module.forward = probe

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.record['modes'].append(self.modes)
        self.modes = []

    def after_train(self, runner):
        path = os.path.join(runner.work_dir, f'probe_rank{get_rank()}.json')
        with open(path, 'w') as f:
            json.dump(self.record, f)
'''

#: Starts the gloo process group, then runs mmpretrain's ``tools/train.py``
#: unchanged. On a machine with CUDA, mmengine's ``init_dist`` would start
#: the (NCCL) group itself; on CPU it calls ``torch.cuda.set_device``, so the
#: group must exist before mmengine looks.
BOOTSTRAP = '''
import runpy
import sys

import torch
import torch.distributed as dist

if not torch.cuda.is_available():
    dist.init_process_group('gloo')
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def mmpretrain_train_script() -> Path:
    """mmpretrain's own training entry point, as the package installs it."""
    import mmpretrain
    path = Path(mmpretrain.__file__).parent / '.mim' / 'tools' / 'train.py'
    assert path.is_file(), f'mmpretrain ships no {path}'
    return path


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_mmpretrain_train_script_gets_the_clean_first_step(
        images: Path, tmp_path: Path) -> None:
    iters = 2
    (tmp_path / 'step_probe.py').write_text(PROBE)
    (tmp_path / 'bootstrap.py').write_text(BOOTSTRAP)
    config = tmp_path / 'tiny_aemim.py'
    # CPU DDP: no device ids (mmengine passes [LOCAL_RANK] otherwise)
    config.write_text(
        TINY.format(base=str(BASE_CONFIG), data=str(images), iters=iters,
                    extra_imports=", 'step_probe'") +
        "custom_hooks = [dict(type='StepProbeHook')]\n"
        'model_wrapper_cfg = dict(device_ids=None)\n'
        "env_cfg = dict(dist_cfg=dict(backend='gloo'))\n")
    work_dir = tmp_path / 'work'
    env = dict(os.environ, OMP_NUM_THREADS='1', OMP_WAIT_POLICY='PASSIVE',
               PYTHONPATH=os.pathsep.join(
                   p for p in (str(tmp_path), os.environ.get('PYTHONPATH'))
                   if p))
    cmd = [sys.executable, '-m', 'torch.distributed.run',
           '--nproc_per_node', '2', '--master_port', str(free_port()),
           str(tmp_path / 'bootstrap.py'), str(mmpretrain_train_script()),
           str(config), '--launcher', 'pytorch', '--work-dir', str(work_dir)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert 'Distributed training: True' in out
    for rank in (0, 1):
        record = json.loads((work_dir / f'probe_rank{rank}.json').read_text())
        assert record['wrapper'] == 'AEMIMDistributedDataParallel', record
        assert record['modes'] == [['clean', 'adversarial']] * iters, record


# ---------------------------------------------------------------- optim
class _OwnBackward(OptimWrapper):

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        super().backward(loss, **kwargs)


class _OwnUpdate(AmpOptimWrapper):

    def update_params(self, loss: torch.Tensor, **kwargs) -> None:
        super().update_params(loss, **kwargs)


class _OwnStep(OptimWrapper):
    """Overrides neither ``backward`` nor ``update_params``: accepted."""

    def step(self, **kwargs) -> None:
        super().step(**kwargs)


def _deepspeed_wrapper() -> type:
    from mmengine._strategy.deepspeed import DeepSpeedOptimWrapper
    return DeepSpeedOptimWrapper


def _colossalai_wrapper() -> type:
    from mmengine._strategy.colossalai import ColossalAIOptimWrapper
    return ColossalAIOptimWrapper


@pytest.mark.parametrize('cls', [OptimWrapper, AmpOptimWrapper, _OwnStep])
def test_supported_optim_wrappers_pass(cls: type) -> None:
    check_optim_wrapper(object.__new__(cls))


@pytest.mark.parametrize('get_cls, why', [
    (lambda: ApexOptimWrapper, 'overrides backward'),
    (_deepspeed_wrapper, 'not an mmengine OptimWrapper'),
    (_colossalai_wrapper, 'overrides backward'),
    (lambda: OptimWrapperDict, 'overrides backward and update_params'),
    (lambda: _OwnBackward, 'overrides backward'),
    (lambda: _OwnUpdate, 'overrides update_params'),
])
def test_other_optim_wrappers_are_refused(get_cls, why: str) -> None:
    cls = get_cls()
    supported = ', '.join(c.__name__ for c in SUPPORTED_OPTIM_WRAPPERS)
    with pytest.raises(TypeError,
                       match=f"optim_wrapper.type='{cls.__name__}'.*{why}"
                       f'.*Supported: {supported}'):
        check_optim_wrapper(object.__new__(cls))


OPTIM_WRAPPERS.register_module(name='_TestOwnBackwardOptimWrapper',
                               module=_OwnBackward, force=True)


def test_runner_refuses_before_the_first_step(images: Path,
                                              tmp_path: Path) -> None:
    """Through mmengine's Runner: the error comes before anything is
    computed (no gradient, no update, no iteration counted)."""
    from mmengine.runner import Runner
    config = tmp_path / 'tiny_aemim.py'
    config.write_text(
        TINY.format(base=str(BASE_CONFIG), data=str(images), iters=2,
                    extra_imports='') +
        "optim_wrapper = dict(type='_TestOwnBackwardOptimWrapper')\n")
    cfg = Config.fromfile(str(config))
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(TypeError,
                       match="optim_wrapper.type='_OwnBackward'.*overrides "
                       'backward.*Supported: OptimWrapper, AmpOptimWrapper'):
        runner.train()
    assert runner.iter == 0
    assert all(p.grad is None for p in runner.model.parameters())
