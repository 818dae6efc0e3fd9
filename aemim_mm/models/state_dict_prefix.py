"""State-dict keys of a wrapper as in the plain algorithm it wraps.

A wrapper holds the algorithm as ``self.algorithm``; its own state dict
would prefix every key with ``algorithm.``. These hooks keep the plain
algorithm's keys (``backbone.…``, ``neck.…``), so that a wrapper's
checkpoint is the algorithm's checkpoint plus the ``adv_`` entries, and a
plain checkpoint loads into the wrapper.
"""
from .adapters import clean_twin_key, is_adversarial_key

_ALGO = 'algorithm.'


def strip_algorithm_prefix(module, state_dict, prefix,
                           local_metadata) -> None:
    """State-dict hook: ``algorithm.backbone.x`` -> ``backbone.x``."""
    old = prefix + _ALGO
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + key[len(old):]] = state_dict.pop(key)


def add_algorithm_prefix(module, state_dict, prefix, *args) -> None:
    """Load pre-hook: accept plain keys (``backbone.x``) and prefixed ones.

    The wrapper's own modules and buffers (a method's extra heads, say) keep
    their keys.

    A plain checkpoint of the algorithm has no adversarial adapters: each
    missing ``adv_*`` entry (parameter or running statistic) is then filled
    with its clean twin, the same start that
    :func:`~aemim_mm.models.adapters.reset_adversarial_adapters` gives.
    """
    own = tuple(f'{name}.' for name in module._modules
                if name not in ('algorithm', 'data_preprocessor'))
    own_buffers = set(module._buffers)
    for key in list(state_dict):
        rest = key[len(prefix):]
        if key.startswith(prefix) and not rest.startswith(
                (_ALGO, 'data_preprocessor.') + own) \
                and rest not in own_buffers:
            state_dict[prefix + _ALGO + rest] = state_dict.pop(key)
    names = [n for n, _ in module.named_parameters()]
    names += [n for n, _ in module.named_buffers()]
    for name in names:
        if is_adversarial_key(name) and prefix + name not in state_dict:
            clean = prefix + clean_twin_key(name)
            if clean in state_dict:
                state_dict[prefix + name] = state_dict[clean]
