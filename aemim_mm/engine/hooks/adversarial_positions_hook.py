"""AdversarialPositionsHook: AdPE's ascent, as the original optimiser does it.

Config (with a model whose encoder has ``adversarial_positions``)::

    optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
        'adversarial_positions': dict(lr_mult=-1.0, decay_mult=0.0)}))
    custom_hooks = [dict(type='AdversarialPositionsHook')]

Before training (after a resume) it checks that every adversarial state is
in exactly one param group of the optimiser, with a negative learning rate
(ascent, the original's ``lr = -adv_lr`` under the network's schedule) and
no weight decay, and refuses the run naming the parameter otherwise. It
registers a step post-hook on the optimiser that projects the states onto
their balls after every step the optimiser takes (so after the accumulated
step under gradient accumulation, and not after a step AMP skips), projects
them once, and marks them guarded. After each iteration it logs the states'
norms (``adv_position_norm``) and, for coordinates, the shift.
"""
from typing import List, Tuple

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict

from mmpretrain.registry import HOOKS
from ...models.adversarial_positions import AdversarialPositions

__all__ = ['AdversarialPositionsHook']

FIX = ("paramwise_cfg=dict(custom_keys={'adversarial_positions': "
       "dict(lr_mult=-1.0, decay_mult=0.0)})")


def adversarial_positions(model) -> List[Tuple[str, AdversarialPositions]]:
    """Every :class:`AdversarialPositions` of a (wrapped) model, by name."""
    model = model.module if is_model_wrapper(model) else model
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, AdversarialPositions)]


def optimizers(optim_wrapper) -> list:
    """The torch optimisers of an optimizer wrapper (or a dict of them)."""
    if isinstance(optim_wrapper, OptimWrapperDict):
        return [w.optimizer for w in optim_wrapper.values()]
    return [optim_wrapper.optimizer]


def check_ascent(name: str, param: torch.Tensor, optims: list,
                 key: str = 'adversarial_positions') -> None:
    """Refuse an adversarial parameter no optimiser climbs without weight
    decay (AdPE's state; the learned mask's network).

    Args:
        name: The parameter's name, for the message.
        param: The parameter.
        optims: The torch optimisers.
        key: The ``paramwise_cfg`` custom key the message proposes.

    Raises:
        ValueError: Naming ``name`` and what to set.
    """
    fix = FIX.replace('adversarial_positions', key)
    groups = [group for optim in optims for group in optim.param_groups
              if any(p is param for p in group['params'])]
    if len(groups) != 1:
        raise ValueError(
            f'AdversarialPositionsHook: {name} is in {len(groups)} optimiser '
            f'param groups, not one; it needs its own group: {fix}.')
    lr = groups[0].get('initial_lr', groups[0]['lr'])
    if not lr < 0:
        raise ValueError(
            f'AdversarialPositionsHook: {name} has learning rate {lr:g}; '
            'an adversary climbs the loss and needs a negative one: ' + fix +
            '.')
    if groups[0].get('weight_decay', 0) != 0:
        raise ValueError(
            f'AdversarialPositionsHook: {name} has weight decay '
            f'{groups[0]["weight_decay"]:g}; with a negative learning rate it '
            'would grow it: set decay_mult=0.0 (' + fix + ').')


@HOOKS.register_module()
class AdversarialPositionsHook(Hook):
    """Check, project and log AdPE's adversarial positions (see the module)."""

    priority = 'NORMAL'

    def before_train(self, runner) -> None:
        found = adversarial_positions(runner.model)
        if not found:
            raise ValueError(
                'AdversarialPositionsHook: the model has no '
                'adversarial_positions (MAEPlusViT / SimMIMViT with '
                'adversarial_positions=dict(mode=..., eps=..., norm=...)).')
        optims = optimizers(runner.optim_wrapper)
        for name, module in found:
            for leaf, param in module.named_parameters():
                check_ascent(f'{name}.{leaf}', param, optims)
        modules = [module for _, module in found]

        def project(*_) -> None:
            for module in modules:
                module.project_()

        for optim in optims:
            optim.register_step_post_hook(project)
        project()
        for module in modules:
            module.guarded = True

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        hub = runner.message_hub
        found = adversarial_positions(runner.model)
        for name, module in found:
            prefix = 'train/' if len(found) == 1 else f'train/{name}.'
            delta = module.delta.detach()
            hub.update_scalar(prefix + 'adv_position_norm',
                              float(delta.norm()))
            if module.mode == 'coordinates':
                hub.update_scalar(prefix + 'adv_coord_row', float(delta[0]))
                hub.update_scalar(prefix + 'adv_coord_col', float(delta[1]))
