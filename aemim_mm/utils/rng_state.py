"""Capture and restore the global random number generators of a process.

:func:`get_rng_state` takes the states of Python's ``random``, numpy's global
``RandomState`` and torch's CPU and CUDA generators as tensors, ints, floats,
strings and ``None`` only (so a checkpoint holding them loads with
``torch.load(..., weights_only=True)``); :func:`set_rng_state` puts them back.
:class:`~aemim_mm.engine.RNGStateCheckpointHook` stores them in
checkpoints.
"""
import logging
import random
from typing import Any, Dict

import numpy as np
import torch
from mmengine.logging import print_log

__all__ = ['get_rng_state', 'set_rng_state']


def get_rng_state() -> Dict[str, Any]:
    """The states of this process's global random number generators.

    Returns:
        ``dict(python=..., numpy=..., torch=..., cuda=...)`` made of torch
        tensors, ints, floats, strings, lists, dicts and ``None`` only (what
        ``torch.load(weights_only=True)`` accepts without an allow-list).
        ``cuda`` is ``None`` without CUDA.
    """
    version, internal, gauss_next = random.getstate()
    name, key, pos, has_gauss, cached_gaussian = np.random.get_state(
        legacy=True)
    cuda = None
    if torch.cuda.is_available():
        cuda = [s.clone() for s in torch.cuda.get_rng_state_all()]
    return dict(
        python=dict(
            version=int(version),
            internal=torch.tensor(internal, dtype=torch.int64),
            gauss_next=None if gauss_next is None else float(gauss_next)),
        numpy=dict(
            name=str(name),
            key=torch.from_numpy(np.asarray(key, dtype=np.int64).copy()),
            pos=int(pos),
            has_gauss=int(has_gauss),
            cached_gaussian=float(cached_gaussian)),
        torch=torch.get_rng_state().clone(),
        cuda=cuda)


def set_rng_state(state: Dict[str, Any]) -> None:
    """Set the global random number generators from :func:`get_rng_state`.

    Args:
        state: A dict returned by :func:`get_rng_state` (possibly loaded from
            a checkpoint).

    Raises:
        ValueError: If ``state`` lacks one of the generators.
    """
    missing = [k for k in ('python', 'numpy', 'torch') if k not in state]
    if missing:
        raise ValueError(f'RNG state: missing entries {missing}; expected the '
                         'dict of aemim_mm get_rng_state().')
    py = state['python']
    random.setstate((int(py['version']),
                     tuple(int(v) for v in py['internal'].tolist()),
                     py['gauss_next']))
    npy = state['numpy']
    np.random.set_state(
        (npy['name'], npy['key'].numpy().astype(np.uint32), int(npy['pos']),
         int(npy['has_gauss']), float(npy['cached_gaussian'])))
    torch.set_rng_state(state['torch'].cpu())
    cuda = state.get('cuda')
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        else:
            print_log(
                f'RNG state: the checkpoint has {len(cuda)} CUDA generator '
                f'states, this process sees {torch.cuda.device_count()} '
                'devices; the CUDA generators are not restored.',
                logger='current',
                level=logging.WARNING)
