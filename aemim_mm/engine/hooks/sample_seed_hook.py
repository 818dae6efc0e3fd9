"""Split-invariant draws: a per-iteration ``sample_seed`` on the model.

Before every training iteration :class:`SampleSeedHook` sets the unwrapped
model's ``sample_seed`` attribute to :func:`~aemim_mm.utils.sample_seed.
derive_sample_seed` ``(seed, iteration)``, the same on every rank.
:class:`~aemim_mm.models.AdversarialMIMWrapper` then derives every random
draw of a sample (MAE mask noise, attack random start, adversarial selection)
from this seed and the sample's index in the global batch, so 1 process with
batch ``2B`` and 2 processes with batch ``B`` draw the same randomness per
sample.

Config::

    custom_hooks = [dict(type='SampleSeedHook')]

Its one job is the sample seed; saving the generator states into checkpoints
(exact resume) is :class:`~aemim_mm.engine.hooks.rng_state_hook.
RNGStateCheckpointHook`'s.
"""
from typing import Optional

import torch
from mmengine.dist import broadcast_object_list, get_world_size
from mmengine.hooks import Hook
from mmengine.hooks.hook import DATA_BATCH
from mmengine.model import is_model_wrapper

from mmpretrain.registry import HOOKS
from ...utils.sample_seed import derive_sample_seed

__all__ = ['SampleSeedHook']


@HOOKS.register_module()
class SampleSeedHook(Hook):
    """Set ``model.sample_seed`` before every training iteration.

    The seed is :func:`derive_sample_seed` ``(seed, runner.iter)``, where
    ``seed`` is rank 0's ``runner.seed`` (the same on every rank, also with
    ``randomness.diff_rank_seed=True``), so it depends on the iteration only,
    not on the number of processes or on a resume. The model (the unwrapped
    one under DDP) must have a ``sample_seed`` attribute
    (:class:`~aemim_mm.models.AdversarialMIMWrapper` has).

    The hook takes no options: adding it to ``custom_hooks`` turns the job
    on. Its priority is ``'VERY_HIGH'``.

    Attributes:
        base_seed: Rank 0's ``runner.seed``, set in ``before_train``.

    Raises:
        TypeError: At construction, on any argument (it has none), naming it.
        ValueError: In ``before_train``, if the model has no ``sample_seed``
            attribute.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self.base_seed: Optional[int] = None

    def before_train(self, runner) -> None:
        """Check the model; take rank 0's seed."""
        model = self._model(runner)
        if not hasattr(model, 'sample_seed'):
            raise ValueError(
                f'{type(self).__name__} needs a model with a `sample_seed` '
                'attribute (e.g. AdversarialMIMWrapper); '
                f'{type(model).__name__} has none. Remove the hook '
                "(ReproducibleRandomnessHook: sample_seed=False).")
        # ``randomness.diff_rank_seed`` makes ``runner.seed`` seed + rank:
        # take rank 0's, the seed a single process would have.
        seed = [int(runner.seed)]
        if get_world_size() > 1:
            broadcast_object_list(seed, src=0)
        self.base_seed = seed[0]

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: DATA_BATCH = None) -> None:
        """Set the model's ``sample_seed`` for this iteration."""
        self._model(runner).sample_seed = derive_sample_seed(
            self.base_seed, runner.iter)

    @staticmethod
    def _model(runner) -> torch.nn.Module:
        model = runner.model
        return model.module if is_model_wrapper(model) else model
