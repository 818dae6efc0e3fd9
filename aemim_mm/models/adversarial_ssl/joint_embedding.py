"""What the survey's adversaries need from a joint-embedding algorithm.

An adversary computes the algorithm's own objective on views it chooses
(clean, adversarial, or a mix), so it needs the algorithm's embedding and
its loss between embeddings, computed exactly as the algorithm computes them:
one interface per algorithm class (exact type), built by
:func:`build_joint_embedding`.

* Contrastive (SimCLR): :meth:`ContrastiveInterface.embed` runs a batch of
  views through the encoder and projector in ONE forward (as ``SimCLR``
  stacks its views), :meth:`ContrastiveInterface.contrast` is the NT-Xent
  over the global batch (:class:`GatherWithGrad`), with the head's
  temperature and loss weight.
* Momentum contrast (MoCo v2): :meth:`MoCoInterface.query` and
  :meth:`MoCoInterface.key` (the EMA key encoder, moved once per iteration,
  with MoCo's batch shuffle), the queue and its update, and
  :meth:`MoCoInterface.head_loss`: the head's cross-entropy of positive and
  negative logits.
* Momentum contrast (MoCo v3): :meth:`MoCoV3Interface.online` (encoder,
  projector and, optionally, the head's predictor),
  :meth:`MoCoV3Interface.key` (the momentum encoder, moved once per
  iteration by :meth:`MoCoV3Interface.step`, as ``MoCoV3.loss``).
* Both MoCo v2's and SimCLR's interfaces give their positive and negative similarities
  of a batch (``similarities``: :class:`Similarities`), for the methods that
  change the logits (IFM, HCL, MoCHi).
* Regression (BYOL, SimSiam): :meth:`RegressionInterface.embed` is the
  online projection of one view, :meth:`RegressionInterface.target` its
  stop-gradient target, :meth:`RegressionInterface.regression` the head's
  predictor-plus-cosine loss, :meth:`RegressionInterface.symmetric` the
  algorithm's two-view loss; :meth:`RegressionInterface.step` is the
  per-iteration state change (BYOL's EMA target).
"""
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, List, Optional, Sequence, Tuple,
                    Type)

import torch
from mmengine.dist import all_gather, all_reduce, get_rank, get_world_size
from torch import Tensor, nn

from mmpretrain.models.selfsup import BYOL, MoCo, MoCoV3, SimCLR, SimSiam
from mmpretrain.models.utils import batch_shuffle_ddp, batch_unshuffle_ddp
from .losses import nt_xent

_INTERFACES: Dict[type, Type['JointEmbedding']] = {}


@dataclass
class Similarities:
    """An algorithm's similarities of one batch, before the temperature.

    Attributes:
        pos: (M, 1) each anchor with its positive.
        neg: (M, K) each anchor with its negatives.
        query: MoCo: the normalised queries (N, D).
        keys: MoCo: the normalised keys (N, D).
        finish: What the algorithm does after its loss (MoCo: enqueue the
            keys); call it once the loss is computed.
    """
    pos: Tensor
    neg: Tensor
    query: Optional[Tensor] = None
    keys: Optional[Tensor] = None
    finish: Callable[[], None] = field(default=lambda: None)


class GatherWithGrad(torch.autograd.Function):
    """Every process's tensor, concatenated; the backward sums the
    gradient over processes before taking this process's slice.

    Each process computes the same loss of the gathered batch, so the sum
    is the gradient of that one loss with respect to this process's
    samples times the number of processes; DDP's mean over processes then
    gives exactly the one-process gradient. (mmpretrain's ``GatherLayer``
    takes the slice without the sum: a plain ``SimCLR``'s DDP gradient is
    the one-process gradient divided by the number of processes.) Local
    batches must have one size (``drop_last``).
    """

    @staticmethod
    def forward(ctx: Any, input: Tensor) -> Tensor:
        ctx.num = input.shape[0]
        return torch.cat(all_gather(input), dim=0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        all_reduce(grad, op='sum')
        start = get_rank() * ctx.num
        return grad[start:start + ctx.num]


def register_joint_embedding(algorithm_cls: type):
    """Class decorator: the interface of exactly ``algorithm_cls``."""

    def decorator(interface_cls: Type['JointEmbedding']):
        _INTERFACES[algorithm_cls] = interface_cls
        return interface_cls

    return decorator


def build_joint_embedding(algorithm: nn.Module) -> 'JointEmbedding':
    """The interface registered for ``algorithm``'s exact class.

    Raises:
        TypeError: For a class without one (the caller has already refused
            algorithms its method is not defined for).
    """
    cls = type(algorithm)
    if cls not in _INTERFACES:
        raise TypeError(
            f'No joint-embedding interface for {cls.__name__}; known: '
            f'{sorted(c.__name__ for c in _INTERFACES)}.')
    return _INTERFACES[cls](algorithm)


class JointEmbedding:
    """Calls into one joint-embedding algorithm.

    Args:
        algorithm: The built mmpretrain algorithm.
    """

    def __init__(self, algorithm: nn.Module) -> None:
        self.algorithm = algorithm

    def views(self, inputs: Sequence[Tensor]) -> List[Tensor]:
        """The augmented views ``[t(x), t'(x)]`` the data pipeline made.

        Raises:
            ValueError: Unless ``inputs`` is a list of two or more tensors
                of one shape (mmpretrain's ``MultiView`` pipelines).
        """
        if not (isinstance(inputs, (list, tuple)) and len(inputs) >= 2
                and all(isinstance(v, Tensor) for v in inputs)
                and len({tuple(v.shape) for v in inputs}) == 1):
            raise ValueError(
                f'{type(self.algorithm).__name__} takes a list of views of '
                'one shape (a MultiView pipeline), got '
                f'{type(inputs).__name__}.')
        return list(inputs)

    def plain_loss(self, inputs: List[Tensor], data_samples) -> Tensor:
        """The unchanged algorithm's loss of ``inputs``."""
        return self.algorithm.loss(inputs, data_samples)['loss']


class HeadInterface(JointEmbedding):
    """An algorithm whose head has a temperature and a cross-entropy loss
    (SimCLR's and MoCo's ``ContrastiveHead``, ``MoCoV3Head``)."""

    @property
    def temperature(self) -> float:
        """The head's temperature."""
        return self.algorithm.head.temperature

    @property
    def loss_weight(self) -> float:
        """The head's loss weight (``CrossEntropyLoss.loss_weight``)."""
        return float(getattr(self.algorithm.head.loss_module, 'loss_weight',
                             1.0))


class ContrastiveHeadInterface(HeadInterface):
    """An algorithm with mmpretrain's ``ContrastiveHead`` (SimCLR, MoCo)."""

    def head_loss(self, pos: Tensor, neg: Tensor) -> Tensor:
        """The head's loss: cross-entropy of ``[pos, neg] / T``, label 0."""
        return self.algorithm.head.loss(pos, neg)


@register_joint_embedding(SimCLR)
class ContrastiveInterface(ContrastiveHeadInterface):
    """SimCLR: encoder + projector, NT-Xent over the global batch."""

    def embed(self, views: Sequence[Tensor]) -> List[Tensor]:
        """L2-normalised projections of each view, in one forward.

        The views are stacked into one batch, as ``SimCLR.loss`` stacks its
        two: BatchNorm sees all of them together.
        """
        algo = self.algorithm
        x = torch.cat(list(views))
        z = algo.neck(algo.backbone(x))[0]
        z = z / (torch.norm(z, p=2, dim=1, keepdim=True) + 1e-10)
        return list(z.split(views[0].shape[0]))

    def contrast(self,
                 embeddings: Sequence[Tensor],
                 stop_grad_others: bool = False,
                 objective: Callable[..., Tensor] = nt_xent,
                 **kwargs) -> Tensor:
        """A contrastive loss of the views over the global batch (every
        process's samples are negatives, as in ``SimCLR``), with the head's
        temperature, times its loss weight.

        Args:
            embeddings: Normalised embeddings of each view (N, D).
            stop_grad_others: Similarities ``z @ sg(z).T`` (RoCL's).
            objective: ``objective(views, temperature, **kwargs)``:
                :func:`~.losses.nt_xent` (default, SimCLR's), or
                :func:`~.losses.supcon`, :func:`~.losses.info_nce`.
            **kwargs: The objective's other arguments.
        """
        gathered = [GatherWithGrad.apply(z) for z in embeddings]
        if stop_grad_others:
            kwargs['stop_grad_others' if objective is nt_xent else
                   'stop_grad'] = True
        return self.loss_weight * objective(gathered, self.temperature,
                                            **kwargs)

    def pair_logits(self, embeddings: Sequence[Tensor]
                    ) -> Tuple[Tensor, Tensor]:
        """SimCLR's positive and negative similarities of two views over the
        global batch (before the temperature).

        Returns:
            ``pos`` (2N, 1): each embedding with its partner view; ``neg``
            (2N, 2N - 2): with every other embedding but itself.
        """
        z = torch.cat([GatherWithGrad.apply(e) for e in embeddings])
        total, num = z.shape[0], z.shape[0] // 2
        sim = z @ z.t()
        index = torch.arange(total, device=z.device)
        partner = (index + num) % total
        pos = sim[index, partner].unsqueeze(1)
        keep = torch.ones_like(sim, dtype=torch.bool)
        keep[index, index] = False
        keep[index, partner] = False
        return pos, sim[keep].reshape(total, total - 2)

    def similarities(self, views: Sequence[Tensor]) -> 'Similarities':
        """SimCLR's positive and negative similarities of two views
        (:meth:`pair_logits`, one forward of both views)."""
        pos, neg = self.pair_logits(self.embed(list(views[:2])))
        return Similarities(pos=pos, neg=neg)


@register_joint_embedding(MoCo)
class MoCoInterface(ContrastiveHeadInterface):
    """MoCo v2: query encoder, EMA key encoder, a queue of negatives."""

    def query(self, view: Tensor) -> Tensor:
        """The normalised query embedding of ``view`` (with gradient)."""
        algo = self.algorithm
        return nn.functional.normalize(algo.neck(algo.backbone(view))[0],
                                       dim=1)

    @torch.no_grad()
    def step(self) -> None:
        """Move the key encoder towards the query encoder (MoCo's EMA),
        once per iteration, as ``MoCo.loss`` does."""
        algo = self.algorithm
        algo.encoder_k.update_parameters(
            nn.Sequential(algo.backbone, algo.neck))

    @torch.no_grad()
    def key(self, view: Tensor) -> Tensor:
        """The normalised key embedding of ``view`` (no gradient), through
        MoCo's batch shuffle."""
        shuffled, unshuffle = batch_shuffle_ddp(view)
        k = nn.functional.normalize(self.algorithm.encoder_k(shuffled)[0],
                                    dim=1)
        return batch_unshuffle_ddp(k, unshuffle)

    @torch.no_grad()
    def reset_key_encoder(self) -> None:
        """Copy the query encoder into the key encoder."""
        algo = self.algorithm
        for key, query in zip(algo.encoder_k.module.parameters(),
                              nn.Sequential(algo.backbone,
                                            algo.neck).parameters()):
            key.copy_(query)

    def queue(self) -> Tensor:
        """The queue of negatives (D, K), detached."""
        return self.algorithm.queue.clone().detach()

    def enqueue(self, keys: Tensor) -> None:
        """Put every process's keys into the queue (MoCo's update)."""
        self.algorithm._dequeue_and_enqueue(keys)

    def check_queue(self, batch_size: int) -> None:
        """Raise unless the queue length is a multiple of the global batch
        (MoCo's queue update writes whole batches).

        Raises:
            ValueError: Naming ``queue_len`` and the global batch.
        """
        world = get_world_size()
        total = batch_size * world
        if self.algorithm.queue_len % total:
            raise ValueError(
                f'MoCo: queue_len ({self.algorithm.queue_len}) must be a '
                f'multiple of the global batch ({batch_size} x {world} '
                f'processes = {total}): its queue update writes whole '
                'batches. Change model.algorithm.queue_len or the batch '
                'size.')

    def similarities(self, views: Sequence[Tensor]) -> 'Similarities':
        """MoCo's positive and negative similarities of a batch: the query
        of view 1 with the key of view 2 and with the queue; ``finish``
        enqueues the keys (call it after the loss, as ``MoCo.loss``).

        Raises:
            ValueError: Before any forward, if the queue length is not a
                multiple of the global batch (:meth:`check_queue`).
        """
        self.check_queue(views[0].shape[0])
        q = self.query(views[0])
        self.step()
        k = self.key(views[1])
        return Similarities(pos=(q * k).sum(1, keepdim=True),
                            neg=q @ self.queue(), query=q, keys=k,
                            finish=lambda: self.enqueue(k))


@register_joint_embedding(MoCoV3)
class MoCoV3Interface(HeadInterface):
    """MoCo v3: online encoder + projector (+ predictor), momentum
    encoder."""

    def online(self, view: Tensor, predictor: bool = True) -> Tensor:
        """The normalised online embedding of ``view`` (with gradient):
        projection, then the head's predictor if ``predictor``."""
        algo = self.algorithm
        z = algo.neck(algo.backbone(view))[0]
        if predictor:
            z = algo.head.predictor([z])[0]
        return nn.functional.normalize(z, dim=1)

    @torch.no_grad()
    def step(self) -> None:
        """Move the momentum encoder (MoCo v3's cosine EMA), once per
        iteration, as ``MoCoV3.loss`` does."""
        algo = self.algorithm
        algo.momentum_encoder.update_parameters(
            nn.Sequential(algo.backbone, algo.neck))

    @torch.no_grad()
    def key(self, view: Tensor) -> Tensor:
        """The normalised momentum-encoder embedding of ``view``."""
        return nn.functional.normalize(
            self.algorithm.momentum_encoder(view)[0], dim=1)

    @torch.no_grad()
    def reset_key_encoder(self) -> None:
        """Copy the online encoder and projector into the momentum
        encoder."""
        algo = self.algorithm
        for key, query in zip(algo.momentum_encoder.module.parameters(),
                              nn.Sequential(algo.backbone,
                                            algo.neck).parameters()):
            key.copy_(query)


class RegressionInterface(JointEmbedding):
    """A predictor regressing one view's embedding onto the other's
    stop-gradient target (BYOL, SimSiam)."""

    def step(self) -> None:
        """The per-iteration state change (none)."""

    def embed(self, view: Tensor) -> Tensor:
        """The online projection of one view (its own forward)."""
        algo = self.algorithm
        return algo.neck(algo.backbone(view))[0]

    def target(self, view: Tensor, embedding: Tensor) -> Tensor:
        """The stop-gradient target of ``view`` (``embedding``: its online
        projection)."""
        raise NotImplementedError

    def regression(self, embedding: Tensor, target: Tensor) -> Tensor:
        """The head's loss: predictor on ``embedding``, cosine to the
        (detached) ``target``."""
        return self.algorithm.head.loss(embedding, target)

    def symmetric(self, e1: Tensor, e2: Tensor, k1: Tensor,
                  k2: Tensor) -> Tensor:
        """The algorithm's two-view loss from online embeddings ``e`` and
        targets ``k``."""
        raise NotImplementedError


@register_joint_embedding(BYOL)
class BYOLInterface(RegressionInterface):
    """BYOL: online projection + predictor, EMA target network."""

    def step(self) -> None:
        """Move the target network towards the online one (BYOL's EMA),
        once per iteration, as ``BYOL.loss`` does."""
        algo = self.algorithm
        with torch.no_grad():
            algo.target_net.update_parameters(
                nn.Sequential(algo.backbone, algo.neck))

    def target(self, view: Tensor, embedding: Tensor) -> Tensor:
        with torch.no_grad():
            return self.algorithm.target_net(view)[0]

    def symmetric(self, e1, e2, k1, k2):
        return 2. * (self.regression(e1, k2) + self.regression(e2, k1))


@register_joint_embedding(SimSiam)
class SimSiamInterface(RegressionInterface):
    """SimSiam: the target is the other view's own projection, detached."""

    def target(self, view: Tensor, embedding: Tensor) -> Tensor:
        return embedding.detach()

    def symmetric(self, e1, e2, k1, k2):
        return 0.5 * (self.regression(e1, k2) + self.regression(e2, k1))

