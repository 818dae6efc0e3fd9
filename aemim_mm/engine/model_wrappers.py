"""DDP for AEMIM: the clean loss is backpropagated before the adversarial
graph is built, as in :meth:`AdversarialMIMWrapper.train_step`.

mmengine's ``MMDistributedDataParallel.train_step`` runs the wrapped model's
``loss`` in one forward; it never calls the model's own ``train_step``. This
subclass routes an :class:`~aemim_mm.models.AdversarialMIMWrapper` through
:func:`~aemim_mm.models.wrapper.clean_first_train_step` instead (the first
backward without gradient synchronisation, the second synchronising the sum),
a model whose class sets ``SYNCS_OWN_GRADIENTS = True`` (ADIOS: two
optimizers, two alternating backward passes per iteration) through its own
``train_step``, which averages each step's gradients over processes itself
(no DDP forward runs, so DDP's gradient hooks stay idle), and any other model
through mmengine's step. A config selects it, so that
every launcher (mmpretrain's ``tools/train.py``, ``mim train``, slurm) uses
it; the project's AEMIM configs inherit ``configs/_base_/aemim_ddp.py``::

    model_wrapper_cfg = dict(
        type='AEMIMDistributedDataParallel', broadcast_buffers=False)

This package's ``tools/train.py`` also picks it for an AEMIM config that sets
no ``model_wrapper_cfg``.
"""
from typing import Dict

import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper
# mmengine's root registry: the Runner looks wrapper types up there with
# ``MODEL_WRAPPERS.get``, which does not search mmpretrain's child registry.
from mmengine.registry import MODEL_WRAPPERS

from ..models.wrapper import AdversarialMIMWrapper, clean_first_train_step


@MODEL_WRAPPERS.register_module()
class AEMIMDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` with AEMIM's clean-first training step."""

    def train_step(self, data: dict,
                   optim_wrapper: OptimWrapper) -> Dict[str, torch.Tensor]:
        if isinstance(self.module, AdversarialMIMWrapper):
            return clean_first_train_step(self, self.module, data,
                                          optim_wrapper)
        if getattr(type(self.module), 'SYNCS_OWN_GRADIENTS', False):
            return self.module.train_step(data, optim_wrapper)
        return super().train_step(data, optim_wrapper)
