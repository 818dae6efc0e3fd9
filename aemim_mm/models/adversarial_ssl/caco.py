"""CaCo: Cooperative-adversarial Contrast (Wang, Huang, Zeng, Qi; TPAMI,
"AdCo-v2"), on MoCo v3.

One bank ``W`` (D x K) of learnable entries holds the positives and the
negatives. For each online query ``q_i`` of one view, its positive is the
bank entry nearest the momentum key of the other view; the loss is the
cross-entropy over the whole bank, summed over both directions::

    pos_1 = argmax_k(k_2 . W^_k),   pos_2 = argmax_k(k_1 . W^_k)
    L = CE(q_1 . W^ / T, pos_1) + CE(q_2 . W^ / T, pos_2)

After the loss, with the pre-step queries and ``p = softmax(q . W^ / T_m)``,
each entry moves along its coefficient ``p_k`` (a negative: adversarial,
up the loss) or ``1 - p_pos`` (the positive: cooperative, down the loss);
both pull the entry towards the queries (:class:`~.memory_bank.MemoryBank`:
momentum, no weight decay by default, the gradient averaged over
processes). The bank's learning rate warms up linearly over
``memory_warmup_epochs`` and then follows a cosine to ``memory_lr_final``
(the official per-epoch schedule). As the official ``ad_init``, the first
``K / batch`` iterations train MoCo's loss against the bank while it fills
with keys, then the momentum encoder copies the online one. Deviations from
the official code (``maple-research-lab/CaCo``): docs/survey.md.
"""
import math
from typing import Dict, List

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from torch import Tensor, nn

from mmpretrain.models.selfsup import MoCoV3
from mmpretrain.registry import MODELS
from ...utils.checks import is_int, is_number
from .base import AdversarialSSLWrapper, check_temperature
from .memory_bank import MemoryBank, bank_logits, check_memory_options


@MODELS.register_module()
class CaCo(AdversarialSSLWrapper, MemoryBank):
    """CaCo around mmpretrain's MoCo v3.

    Args:
        algorithm: A ``MoCoV3`` config (its head's temperature is CaCo's
            ``T``, 0.08; its loss weight multiplies CaCo's loss).
        bank_size: ``K``, the bank's entries (CaCo: 65536).
        memory_lr: The bank's peak learning rate (CaCo: 3).
        memory_lr_final: Its final one, reached by a cosine (CaCo: 3, no
            decay).
        memory_warmup_epochs: Epochs of the linear warm-up (CaCo: 10, the
            network's).
        memory_temperature: ``T_m`` (CaCo: 0.08).
        memory_momentum: The bank's SGD momentum (CaCo: 0.9).
        memory_weight_decay: The bank's weight decay (CaCo: 0).
        predictor: Pass the online projection through the head's predictor
            (``False``, CaCo's ``withoutpred``: the predictor is replaced by
            an identity, so that no parameter is left unused).
        fill: Start with the official ``ad_init`` (MoCo's loss at
            ``fill_temperature`` while the bank fills with keys, then the
            momentum encoder copies the online one); ``False``: start from
            a random bank.
        fill_temperature: The fill's temperature (the official 0.2).
        **kwargs: :class:`AdversarialSSLWrapper`'s arguments (no attack).
    """

    ALGORITHMS = (MoCoV3, )

    def __init__(self,
                 algorithm: dict,
                 bank_size: int = 65536,
                 memory_lr: float = 3.0,
                 memory_lr_final: float = 3.0,
                 memory_warmup_epochs: int = 10,
                 memory_temperature: float = 0.08,
                 memory_momentum: float = 0.9,
                 memory_weight_decay: float = 0.,
                 predictor: bool = False,
                 fill: bool = True,
                 fill_temperature: float = 0.2,
                 **kwargs) -> None:
        check_memory_options('CaCo', memory_lr, memory_temperature,
                             memory_momentum, memory_weight_decay, fill)
        if not is_int(bank_size) or bank_size < 1:
            raise ValueError(f'CaCo: bank_size must be an int >= 1, got '
                             f'{bank_size!r}.')
        if not is_number(memory_lr_final) or memory_lr_final < 0:
            raise ValueError('CaCo: memory_lr_final must be a number >= 0, '
                             f'got {memory_lr_final!r}.')
        if not is_int(memory_warmup_epochs) or memory_warmup_epochs < 0:
            raise ValueError('CaCo: memory_warmup_epochs must be an int >= '
                             f'0, got {memory_warmup_epochs!r}.')
        if not is_number(fill_temperature) or fill_temperature <= 0:
            raise ValueError('CaCo: fill_temperature must be a number > 0, '
                             f'got {fill_temperature!r}.')
        if not isinstance(predictor, bool):
            raise ValueError(f'CaCo: predictor must be a bool, got '
                             f'{predictor!r}.')
        super().__init__(algorithm, attack=None, **kwargs)
        check_temperature('CaCo', self.ssl)
        self.memory_lr = memory_lr
        self.memory_lr_final = memory_lr_final
        self.memory_warmup_epochs = memory_warmup_epochs
        self.memory_temperature = memory_temperature
        self.memory_momentum = memory_momentum
        self.memory_weight_decay = memory_weight_decay
        self.predictor = predictor
        self.fill_temperature = fill_temperature
        if not predictor:
            self.algorithm.head.predictor = nn.Identity()
        dim = _projection_dim(self.algorithm.neck)
        self.register_buffer('bank', torch.randn(dim, bank_size))
        self.init_bank_state(fill)

    def loss(self, inputs: List[Tensor],
             data_samples: list) -> Dict[str, Tensor]:
        """One CaCo iteration (``training/train_caco.py:
        update_sym_network``)."""
        t1, t2 = self.ssl.views(inputs)
        q1 = self.ssl.online(t1, self.predictor)
        q2 = self.ssl.online(t2, self.predictor)
        self.ssl.step()
        k1, k2 = self.ssl.key(t1), self.ssl.key(t2)
        if not self.bank_full:                 # the official ad_init
            return dict(loss=self.fill_step(q1, k2))
        # each query's positive: the entry nearest the other view's key
        with torch.no_grad():
            pos1 = bank_logits(k2, self.bank).argmax(dim=1)
            pos2 = bank_logits(k1, self.bank).argmax(dim=1)
        l1 = bank_logits(q1, self.bank).clone()
        l2 = bank_logits(q2, self.bank).clone()
        T = self.ssl.temperature
        loss = self.ssl.loss_weight * (F.cross_entropy(l1 / T, pos1) +
                                       F.cross_entropy(l2 / T, pos2))
        # the bank: positives cooperate (1 - p), negatives compete (p)
        coefficients = [self.coefficients(l1, pos1),
                        self.coefficients(l2, pos2)]
        self.step_bank([q1.detach(), q2.detach()], coefficients,
                       self.memory_temperature, self.current_memory_lr(),
                       self.memory_momentum, self.memory_weight_decay)
        return dict(loss=loss, adv_positive_prob=(
            coefficients[0].gather(1, pos1[:, None]).neg().add(1).mean()))

    def coefficients(self, logits: Tensor, positives: Tensor) -> Tensor:
        """``p = softmax(logits / T_m)``, with ``1 - p`` at each row's
        positive (constants)."""
        p = (logits.detach() / self.memory_temperature).softmax(dim=1)
        rows = torch.arange(p.shape[0], device=p.device)
        p[rows, positives] = 1 - p[rows, positives]
        return p

    def current_memory_lr(self) -> float:
        """The bank's learning rate at the Runner's epoch (the official
        per-epoch warm-up and cosine)."""
        hub = MessageHub.get_current_instance()
        epoch = hub.get_info('epoch', 0)
        if epoch < self.memory_warmup_epochs:
            return self.memory_lr * (epoch + 1) / self.memory_warmup_epochs
        if self.memory_lr_final == self.memory_lr:
            return self.memory_lr
        max_epochs = hub.get_info('max_epochs')
        if max_epochs is None:
            raise RuntimeError(
                'CaCo: a memory_lr_final other than memory_lr needs the '
                "Runner's max_epochs (an epoch-based train loop).")
        progress = (epoch - self.memory_warmup_epochs) / max(
            max_epochs - self.memory_warmup_epochs, 1)
        return self.memory_lr_final + 0.5 * (1 + math.cos(
            math.pi * progress)) * (self.memory_lr - self.memory_lr_final)

    def fill_step(self, q: Tensor, k: Tensor) -> Tensor:
        """MoCo's loss of one direction against the bank at the fill's
        temperature, the keys written into the bank; once it is full, the
        momentum encoder copies the online one (``training/init_memory.py``).
        """
        logits = torch.cat([(q * k).sum(1, keepdim=True),
                            bank_logits(q, self.bank).clone()], dim=1)
        loss = F.cross_entropy(logits / self.fill_temperature,
                               q.new_zeros(q.shape[0], dtype=torch.long))
        if self.fill_bank(k):
            self.ssl.reset_key_encoder()
        return loss


def _projection_dim(neck: nn.Module) -> int:
    """The output width of a projector (its last linear layer)."""
    linears = [m for m in neck.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError(f'CaCo: cannot tell the projection width of '
                        f'{type(neck).__name__} (no linear layer).')
    return linears[-1].out_features
