"""The optimizer wrappers that AEMIM's clean-first training step can drive.

:func:`~aemim_mm.models.wrapper.clean_first_train_step` backpropagates the
clean loss itself (scaled by ``scale_loss`` and, under AMP, by
``loss_scaler``), then hands the adversarial loss to ``update_params``. That
is exactly what mmengine's :class:`~mmengine.optim.OptimWrapper` and
:class:`~mmengine.optim.AmpOptimWrapper` do in one backward. An optimizer
wrapper with its own ``backward`` or ``update_params`` (DeepSpeed, apex,
ColossalAI, or any subclass that overrides them) would see only half of the
loss go through its machinery, so :func:`check_optim_wrapper` refuses it.
"""
from typing import Tuple

from mmengine.optim import AmpOptimWrapper, OptimWrapper

__all__ = ['SUPPORTED_OPTIM_WRAPPERS', 'check_optim_wrapper']

#: The optimizer wrapper classes whose internals the clean-first step drives.
SUPPORTED_OPTIM_WRAPPERS: Tuple[type, ...] = (OptimWrapper, AmpOptimWrapper)

# method name -> the implementations the clean-first step is written for
_DRIVEN_METHODS = {
    name: {getattr(cls, name) for cls in SUPPORTED_OPTIM_WRAPPERS}
    for name in ('backward', 'update_params')
}


def check_optim_wrapper(optim_wrapper: object) -> None:
    """Refuse an optimizer wrapper that the clean-first step cannot drive.

    Accepted: an instance of ``OptimWrapper`` or ``AmpOptimWrapper``, or of a
    subclass that keeps their ``backward`` and ``update_params``.

    Args:
        optim_wrapper: What mmengine's Runner passes to ``train_step``.

    Raises:
        TypeError: For any other optimizer wrapper, naming its class and the
            supported ones.
    """
    cls = type(optim_wrapper)
    if isinstance(optim_wrapper, OptimWrapper):
        overridden = [
            name for name, allowed in _DRIVEN_METHODS.items()
            if getattr(cls, name) not in allowed
        ]
        if not overridden:
            return
        why = (f'it overrides {" and ".join(overridden)}, and the '
               'clean-first step backpropagates the clean loss itself, '
               'only the adversarial loss going through update_params')
    else:
        why = 'it is not an mmengine OptimWrapper'
    supported = ', '.join(c.__name__ for c in SUPPORTED_OPTIM_WRAPPERS)
    raise TypeError(
        f'AdversarialMIMWrapper: optim_wrapper.type={cls.__name__!r} '
        f'({cls.__module__}) is not supported by the clean-first training '
        f'step: {why}. Supported: {supported}, or a subclass that keeps '
        'their backward and update_params. Set optim_wrapper.type to '
        "'OptimWrapper' or 'AmpOptimWrapper'.")
