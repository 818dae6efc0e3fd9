"""DDP for AEMIM: the clean loss is backpropagated before the adversarial
graph is built, as in :meth:`AdversarialMIMWrapper.train_step`.

mmengine's ``MMDistributedDataParallel.train_step`` runs the wrapped model's
``loss`` in one forward; it never calls the model's own ``train_step``. This
subclass routes an :class:`~aemim_mm.models.AdversarialMIMWrapper` through
:func:`~aemim_mm.models.wrapper.clean_first_train_step` instead (the first
backward without gradient synchronisation, the second synchronising the sum)
and any other model through mmengine's step. ``tools/train.py`` picks it for
AEMIM configs that set no ``model_wrapper_cfg``; elsewhere set::

    model_wrapper_cfg = dict(type='AEMIMDistributedDataParallel')
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
        return super().train_step(data, optim_wrapper)
