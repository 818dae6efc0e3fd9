"""SyncBatchNorm under AEMIM: one process, and the forwards every process
must run.

A ``SyncBatchNorm`` is a collective: in a process group, every process must
run each of its forwards (clean, each attack step, adversarial), or the
others wait forever.

- In one process, mmengine's ``Runner`` replaces every ``SyncBatchNorm`` of
  the model by a new ``_BatchNormXd`` (``revert_sync_batchnorm``), which would
  drop the adversarial twins of a split norm and SparK's sparse forward.
  :func:`one_process_batch_norms` makes that replacement first, keeping the
  tensors and the sparse forward, before the wrapper splits the norms.
- Across processes, :func:`check_equal_adversarial_forwards` refuses
  settings under which processes may run different forwards.
"""
import torch.distributed as dist
from mmengine.model import revert_sync_batchnorm
from torch import nn

from mmpretrain.models.utils.sparse_modules import (SparseBatchNorm2d,
                                                    SparseSyncBatchNorm2d)


def one_process_batch_norms(model: nn.Module) -> int:
    """Replace ``model``'s SyncBatchNorms by what they compute in one
    process, in place: SparK's ``SparseSyncBatchNorm2d`` by a
    ``SparseBatchNorm2d``, any other by mmengine's ``_BatchNormXd``
    (``revert_sync_batchnorm``). Parameters and statistics are kept (the
    same tensors), and so is the training mode.

    Without a process group a SyncBatchNorm normalises like a BatchNorm, so
    the results do not change.

    Returns:
        How many layers were replaced.

    Raises:
        RuntimeError: If a process group is initialised (the layers then
            synchronise and must stay).
    """
    if dist.is_available() and dist.is_initialized():
        raise RuntimeError('one_process_batch_norms: a process group is '
                           'initialised; its SyncBatchNorms must stay.')
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _is_sparse_sync(child):
                parent.add_module(name, _as_sparse_batch_norm(child))
                count += 1
            elif isinstance(child, nn.SyncBatchNorm):
                count += 1
    revert_sync_batchnorm(model)    # in place below the root
    return count


def _is_sparse_sync(module: nn.Module) -> bool:
    return (isinstance(module, SparseSyncBatchNorm2d)
            and type(module).forward is SparseSyncBatchNorm2d.forward)


def _as_sparse_batch_norm(sync: nn.SyncBatchNorm) -> SparseBatchNorm2d:
    """A ``SparseBatchNorm2d`` holding ``sync``'s tensors and mode."""
    norm = SparseBatchNorm2d(sync.num_features, sync.eps, sync.momentum,
                             sync.affine, sync.track_running_stats)
    norm._parameters.update(sync._parameters)
    norm._buffers.update(sync._buffers)
    norm.train(sync.training)
    return norm


def check_equal_adversarial_forwards(model: nn.Module, sample_seed,
                                     adv_ratio: float) -> None:
    """Raise if processes may run different adversarial forwards through a
    SyncBatchNorm.

    Sample-keyed draws (``sample_seed`` set) with ``0 < adv_ratio < 1``
    select a global subset, so processes may get different numbers of
    adversarial samples, and one may get none and skip the attack and the
    adversarial pass while the others wait in its SyncBatchNorms.

    Args:
        model: The wrapper (searched for ``SyncBatchNorm`` layers only when
            the other conditions hold).
        sample_seed: The wrapper's ``sample_seed`` of this iteration.
        adv_ratio: The wrapper's ``adv_ratio`` of this iteration.

    Raises:
        RuntimeError: Naming the settings, for more than one process.
    """
    if (sample_seed is None or not 0 < adv_ratio < 1
            or not (dist.is_available() and dist.is_initialized())
            or dist.get_world_size() == 1):
        return
    if any(isinstance(m, nn.SyncBatchNorm) for m in model.modules()):
        raise RuntimeError(
            f'adv_ratio={adv_ratio} with sample-keyed draws (sample_seed, '
            'SampleSeedHook) over several processes can leave a process '
            'without adversarial samples, and its SyncBatchNorm layers would '
            'then stall the others. Use adv_ratio 1 (or 0), per-process '
            'draws (no SampleSeedHook), or BatchNorm instead of '
            'SyncBatchNorm.')
