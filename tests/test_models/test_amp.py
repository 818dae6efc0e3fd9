"""AEMIM trains with a dynamic loss scale (the AMP path), on CPU.

mmengine's ``AmpOptimWrapper`` refuses a CPU-only machine, so the test uses
it with torch's CPU ``GradScaler`` and bf16 autocast in its place: the same
``backward`` / ``step`` code, and the wrapper's clean-first training step
scales both of its backward passes through ``optim_wrapper.loss_scaler``.
"""
from contextlib import contextmanager

import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from torch.testing import assert_close

from tiny_models import build_wrapper


class CpuAmpOptimWrapper(AmpOptimWrapper):
    """``AmpOptimWrapper`` with a CPU grad scaler and bf16 autocast."""

    def __init__(self, optimizer, init_scale: float = 2.0**10):
        OptimWrapper.__init__(self, optimizer)     # skips the device check
        self.loss_scaler = torch.amp.GradScaler(
            'cpu', init_scale=init_scale, growth_interval=1)
        self._scale_update_param = None
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model):
        with OptimWrapper.optim_context(self, model), torch.autocast(
                'cpu', dtype=torch.bfloat16):
            yield


def batch(seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return dict(inputs=torch.randint(0, 256, (4, 3, 32, 32), generator=gen,
                                     dtype=torch.uint8),
                data_samples=[None] * 4)


def make(seed: int = 0):
    torch.manual_seed(seed)
    wrapper = build_wrapper(attack=dict(type='FeatureDistancePGD', eps=2,
                                        steps=2))
    optim = CpuAmpOptimWrapper(torch.optim.AdamW(wrapper.parameters(),
                                                 lr=1e-3))
    return wrapper, optim


def test_trains_with_a_growing_dynamic_loss_scale():
    wrapper, optim = make()
    scales, losses = [], []
    for it in range(6):
        log_vars = wrapper.train_step(batch(it % 2), optim)
        losses.append(log_vars['loss'].item())
        scales.append(optim.loss_scaler.get_scale())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert scales == sorted(scales) and scales[-1] > scales[0]  # no overflow
    assert losses[-1] < losses[0]                               # it learns
    for name, p in wrapper.named_parameters():
        assert torch.isfinite(p).all(), name


def test_clean_overflow_skips_the_step_and_backs_off(monkeypatch):
    """An inf in the clean loss (fp16 overflow, say) reaches no weight: the
    scaler skips the step and halves its scale."""
    wrapper, optim = make()
    wrapper.train_step(batch(0), optim)
    before = {n: p.detach().clone() for n, p in wrapper.named_parameters()}
    scale = optim.loss_scaler.get_scale()
    original = wrapper.mim.reconstruction_loss
    calls = []

    def first_call_inf(inputs, mask, target):
        loss, feat, pred = original(inputs, mask, target)
        calls.append(1)
        return (loss * float('inf') if len(calls) == 1 else loss), feat, pred

    monkeypatch.setattr(wrapper.mim, 'reconstruction_loss', first_call_inf)
    wrapper.train_step(batch(1), optim)
    assert optim.loss_scaler.get_scale() == scale / 2
    for name, p in wrapper.named_parameters():
        assert_close(p.detach(), before[name], msg=name)


def test_adversarial_overflow_keeps_the_clean_update(monkeypatch):
    """A non-finite adversarial loss is dropped by the wrapper: the clean
    update happens, the scale is not cut, and the counter says so."""
    wrapper, optim = make()
    wrapper.train_step(batch(0), optim)
    before = {n: p.detach().clone() for n, p in wrapper.named_parameters()}
    scale = optim.loss_scaler.get_scale()
    original = wrapper.mim.reconstruction_loss
    calls = []

    def second_call_nan(inputs, mask, target):
        loss, feat, pred = original(inputs, mask, target)
        calls.append(1)
        return (loss * float('nan') if len(calls) == 2 else loss), feat, pred

    monkeypatch.setattr(wrapper.mim, 'reconstruction_loss', second_call_nan)
    log_vars = wrapper.train_step(batch(1), optim)
    assert log_vars['adv_nonfinite'] == 4
    assert optim.loss_scaler.get_scale() == scale * 2      # a good step
    changed = [n for n, p in wrapper.named_parameters()
               if not torch.equal(p.detach(), before[n])]
    assert 'algorithm.backbone.layers.0.attn.qkv.weight' in changed
    for name, p in wrapper.named_parameters():
        assert torch.isfinite(p).all(), name
