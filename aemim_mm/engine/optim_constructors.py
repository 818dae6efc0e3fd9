"""One optimizer wrapper per sub-module, as an ``OptimWrapperDict``.

mmengine's Runner builds an ``OptimWrapperDict`` (several optimizers) only
from already-built wrappers or through a constructor; mmengine 0.10.7 and
mmpretrain 1.2.0 register none that builds one from configs (mmengine's
documentation leaves "a MultiOptimWrapperConstructor" to the user). This is
that constructor: each entry of the config is an ordinary optimizer-wrapper
config (``type``, ``optimizer``, ``paramwise_cfg``, its own ``constructor``)
applied to one sub-module of the model::

    optim_wrapper = dict(
        constructor='SubmoduleOptimWrapperConstructor',
        encoder=dict(type='OptimWrapper', module='algorithm',
                     optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        mask_net=dict(type='OptimWrapper',
                      optimizer=dict(type='SGD', lr=0.01, momentum=0.9)))

``module`` names the sub-module (a dotted path; default: the entry's key).
Parameter schedulers then go per key (``param_scheduler = dict(encoder=[...],
mask_net=[...])``) or, as a list, to every optimizer (mmengine's Runner).
Used by ADIOS (``configs/survey/adios_*.py``).
"""
from collections import OrderedDict
from typing import Optional

from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict, build_optim_wrapper
from torch import nn

from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SubmoduleOptimWrapperConstructor:
    """Build an ``OptimWrapperDict``: one wrapper per named sub-module.

    Args:
        optim_wrapper_cfg: ``{key: optimizer-wrapper config}``; each config
            may name its sub-module with ``module`` (default: ``key``).
        paramwise_cfg: Must be ``None``: each entry has its own.

    Raises:
        ValueError: For an empty or malformed config, a top-level
            ``paramwise_cfg``, or (when called) a missing sub-module or two
            entries sharing parameters.
    """

    def __init__(self, optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        name = type(self).__name__
        if paramwise_cfg is not None:
            raise ValueError(f'{name}: give paramwise_cfg inside each '
                             'entry, not at the top level of optim_wrapper.')
        if not isinstance(optim_wrapper_cfg, dict) or not optim_wrapper_cfg:
            raise ValueError(f'{name}: optim_wrapper must map names to '
                             'optimizer-wrapper configs, got '
                             f'{optim_wrapper_cfg!r}.')
        for key, cfg in optim_wrapper_cfg.items():
            if not isinstance(cfg, dict) or 'optimizer' not in cfg:
                raise ValueError(
                    f'{name}: optim_wrapper.{key} must be an optimizer-'
                    f'wrapper config with an optimizer, got {cfg!r}.')
        self.optim_wrapper_cfg = optim_wrapper_cfg

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        """The wrappers of ``model``'s sub-modules (``model`` may be inside a
        DDP wrapper)."""
        name = type(self).__name__
        if is_model_wrapper(model):
            model = model.module
        wrappers = OrderedDict()
        owner = {}
        for key, cfg in self.optim_wrapper_cfg.items():
            cfg = dict(cfg)
            path = cfg.pop('module', key)
            try:
                module = model.get_submodule(path)
            except AttributeError:
                raise ValueError(
                    f'{name}: optim_wrapper.{key}.module={path!r} is not a '
                    f'sub-module of {type(model).__name__}.') from None
            for param in module.parameters():
                if id(param) in owner:
                    raise ValueError(
                        f'{name}: optim_wrapper.{key} ({path}) and '
                        f'optim_wrapper.{owner[id(param)]} share parameters;'
                        ' each parameter must have one optimizer.')
                owner[id(param)] = key
            wrappers[key] = build_optim_wrapper(module, cfg)
        return OptimWrapperDict(**wrappers)
