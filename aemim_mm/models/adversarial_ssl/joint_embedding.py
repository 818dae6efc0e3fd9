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
* Regression (BYOL, SimSiam): :meth:`RegressionInterface.embed` is the
  online projection of one view, :meth:`RegressionInterface.target` its
  stop-gradient target, :meth:`RegressionInterface.regression` the head's
  predictor-plus-cosine loss, :meth:`RegressionInterface.symmetric` the
  algorithm's two-view loss; :meth:`RegressionInterface.step` is the
  per-iteration state change (BYOL's EMA target).
"""
from typing import Any, Callable, Dict, List, Sequence, Type

import torch
from mmengine.dist import all_gather, all_reduce, get_rank
from torch import Tensor, nn

from mmpretrain.models.selfsup import BYOL, SimCLR, SimSiam
from .losses import nt_xent

_INTERFACES: Dict[type, Type['JointEmbedding']] = {}


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


@register_joint_embedding(SimCLR)
class ContrastiveInterface(JointEmbedding):
    """SimCLR: encoder + projector, NT-Xent over the global batch."""

    @property
    def temperature(self) -> float:
        """The head's temperature."""
        return self.algorithm.head.temperature

    @property
    def loss_weight(self) -> float:
        """The head's loss weight (``CrossEntropyLoss.loss_weight``)."""
        return float(getattr(self.algorithm.head.loss_module, 'loss_weight',
                             1.0))

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

