"""Config fix-ups shared by the tools and the mini-reproduction."""
from mmengine.config import Config
from mmengine.logging import print_log

_DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def strip_collate_scope(cfg: Config) -> None:
    """Remove ``_scope_`` from the dataloaders' ``collate_fn`` dicts.

    Configs that inherit ``mmpretrain::`` base configs get a ``_scope_`` key in
    every dict with a ``type``. ``Runner.build_dataloader`` pops only ``type``
    from ``collate_fn`` and passes the rest as keyword arguments, so the
    collate function would be called with ``_scope_=...`` (``default_collate()
    got an unexpected keyword argument '_scope_'``). Dropping the key is
    enough: collate functions live in mmengine's root ``FUNCTIONS`` registry
    (mmpretrain has none), which every scope falls back to.

    Args:
        cfg: The config, changed in place.
    """
    for name in _DATALOADERS:
        loader = cfg.get(name)
        collate = loader.get('collate_fn') if isinstance(loader,
                                                         dict) else None
        if isinstance(collate, dict):
            collate.pop('_scope_', None)


def enable_amp(cfg: Config) -> None:
    """Switch the optimizer wrapper to ``AmpOptimWrapper`` (dynamic scale).

    Args:
        cfg: The config, changed in place.

    Raises:
        RuntimeError: Without a GPU: mmengine's ``AmpOptimWrapper`` asserts
            CUDA (or NPU / MLU / MUSA) when built, also for
            ``dtype='bfloat16'``, so AMP cannot run on CPU.
        ValueError: If ``optim_wrapper`` is another wrapper type.
    """
    from mmengine.device import get_device
    if get_device() == 'cpu':
        raise RuntimeError(
            '--amp needs a GPU: mmengine\'s AmpOptimWrapper only supports '
            'cuda, npu, mlu or musa devices, and none is available. Run '
            'without --amp on CPU.')
    optim_wrapper = cfg.optim_wrapper
    wrapper_type = optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type == 'AmpOptimWrapper':
        print_log('--amp: the config already uses AmpOptimWrapper.',
                  logger='current')
        return
    if wrapper_type != 'OptimWrapper':
        raise ValueError(
            f'--amp: only a plain OptimWrapper can be switched to '
            f'AmpOptimWrapper, but optim_wrapper.type is {wrapper_type!r}')
    optim_wrapper.type = 'AmpOptimWrapper'
    optim_wrapper.setdefault('loss_scale', 'dynamic')
