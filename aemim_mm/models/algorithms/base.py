"""The small interface AEMIM needs from a masked-image-modeling algorithm,
and the dispatch from an algorithm to its interface.

:class:`~aemim_mm.models.AdversarialMIMWrapper` runs one algorithm several
times per iteration (clean pass, attack steps, adversarial pass) with ONE
mask per sample and ONE reconstruction target computed from the clean image.
An algorithm supports this through a :class:`MIMInterface`, registered for
its exact class::

    @register_mim_interface(MyMIM)
    class MyMIMInterface(MIMInterface):
        def sample_mask(self, inputs, data_samples, rng): ...
        def encode(self, inputs, mask): ...
        def reconstruction_loss(self, inputs, mask, target): ...
        def reconstruct_image(self, pred, inputs, mask): ...

Dispatch is by exact type: a subclass of a supported algorithm (which may
override ``loss`` or use a backbone that returns something else) gets no
interface until one is registered for it.
"""
from typing import Any, Dict, List, Tuple, Type

import torch
from torch import nn

from mmpretrain.structures import DataSample
from ..randomness import SampleRandomness

_INTERFACES: Dict[type, Type['MIMInterface']] = {}

INTERFACE_HELP = (
    'To add an algorithm, subclass aemim_mm.models.MIMInterface, implement '
    'sample_mask(inputs, data_samples, rng) -> per-sample mask (B, ...), '
    'encode(inputs, mask) -> encoder tokens (B, N, C), '
    'reconstruction_loss(inputs, mask, target) -> (loss, tokens, pred) and '
    'reconstruct_image(pred, inputs, mask) -> (B, C, H, W) (and '
    'compute_target / model_input when the target is not the image itself), '
    'and register it with '
    '@aemim_mm.models.register_mim_interface(YourAlgorithm).')


def register_mim_interface(algorithm_cls: type):
    """Class decorator: use the decorated interface for ``algorithm_cls``.

    The interface serves instances of exactly ``algorithm_cls``, not of its
    subclasses.

    Args:
        algorithm_cls: The algorithm class (e.g. mmpretrain's ``MAE``).
    """
    if not isinstance(algorithm_cls, type):
        raise TypeError('register_mim_interface expects an algorithm class, '
                        f'got {algorithm_cls!r}.')

    def decorator(interface_cls: Type['MIMInterface']):
        if not (isinstance(interface_cls, type)
                and issubclass(interface_cls, MIMInterface)):
            raise TypeError('register_mim_interface decorates a subclass of '
                            f'MIMInterface, got {interface_cls!r}.')
        _INTERFACES[algorithm_cls] = interface_cls
        return interface_cls

    return decorator


def supported_algorithms() -> List[str]:
    """Names of the algorithm classes that have an interface, sorted."""
    return sorted(cls.__name__ for cls in _INTERFACES)


def build_mim_interface(algorithm: nn.Module) -> 'MIMInterface':
    """The interface registered for ``algorithm``'s exact class.

    Args:
        algorithm: The built algorithm.

    Returns:
        Its interface (``for_algorithm`` of the registered class).

    Raises:
        TypeError: For an algorithm without an interface registered for its
            own class (also a subclass of a supported one); the message names
            the supported algorithms and the interface to implement. The
            interface itself raises a ``TypeError`` for a backbone or
            setting it does not handle.
    """
    cls = type(algorithm)
    if cls in _INTERFACES:
        return _INTERFACES[cls].for_algorithm(algorithm)
    bases = [base.__name__ for base in cls.__mro__[1:] if base in _INTERFACES]
    why = (f' It subclasses {bases[0]}, but a subclass may change the loss '
           f'or the backbone\'s outputs, so {bases[0]}\'s interface is not '
           'used for it.' if bases else '')
    raise TypeError(
        f'AdversarialMIMWrapper does not know the algorithm {cls.__name__}; '
        f'supported: {supported_algorithms()}.{why} ' + INTERFACE_HELP)


def check_backbone(algorithm: nn.Module, allowed: Tuple[type, ...]) -> None:
    """Raise unless ``algorithm.backbone`` is exactly one of ``allowed``.

    Args:
        algorithm: The built algorithm.
        allowed: The backbone classes its interface handles.

    Raises:
        TypeError: Naming the algorithm, the backbone and the allowed ones.
    """
    backbone = type(getattr(algorithm, 'backbone', None))
    if backbone not in allowed:
        names = sorted(cls.__name__ for cls in allowed)
        algo = type(algorithm).__name__
        raise TypeError(
            f'AdversarialMIMWrapper supports {algo} with the backbone '
            f'{names[0] if len(names) == 1 else names} (exact type), got '
            f'{backbone.__name__}. For another backbone, subclass the '
            f'interface of {algo} (aemim_mm.models.algorithms), handle the '
            'backbone there and register it with '
            f'@aemim_mm.models.register_mim_interface({algo}).')


def select_samples(batch: Any, index: torch.Tensor) -> Any:
    """``batch`` restricted to the samples ``index`` (dim 0).

    ``batch`` is a tensor, ``None`` or a tuple / list / dict of them.
    """
    if batch is None:
        return None
    if isinstance(batch, torch.Tensor):
        return batch[index]
    if isinstance(batch, (tuple, list)):
        return type(batch)(select_samples(b, index) for b in batch)
    if isinstance(batch, dict):
        return {k: select_samples(v, index) for k, v in batch.items()}
    raise TypeError(f'cannot select samples of a {type(batch).__name__}.')


def denormalised_patches(pred: torch.Tensor, target: torch.Tensor,
                         norm_pix: bool) -> torch.Tensor:
    """``pred`` (B, L, D) in pixel units: with ``norm_pix``, each patch's
    per-patch normalisation of ``target`` (B, L, D), the way MAE-style heads
    normalise their target, is undone."""
    if not norm_pix:
        return pred
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    return pred * (var + 1.e-6)**.5 + mean

class MIMInterface:
    """Calls into one MIM algorithm with an explicit, reusable mask.

    An iteration calls :meth:`prepare` once (the target and the mask, from
    the clean batch), then :meth:`reconstruction_loss` for the clean and the
    adversarial pass and :meth:`encode` for each attack step, all with that
    target and mask.

    Args:
        algorithm: The built algorithm (``backbone``, ``neck``, ``head``).
    """

    def __init__(self, algorithm: nn.Module) -> None:
        self.algorithm = algorithm

    @classmethod
    def for_algorithm(cls, algorithm: nn.Module) -> 'MIMInterface':
        """The interface for ``algorithm``: ``cls(algorithm)``, or another
        one for a variant of the algorithm (iTPN's ``reconstruction_type``).
        """
        return cls(algorithm)

    def model_input(self, inputs: Any) -> torch.Tensor:
        """The image view the model masks, encodes and the attack perturbs
        (B, C, H, W). Default: ``inputs`` itself (one view)."""
        return inputs

    def compute_target(self, inputs: Any,
                       data_samples: List[DataSample]) -> Any:
        """The reconstruction target, from the CLEAN batch (called without
        gradient). Default: the image (pixel targets)."""
        return self.model_input(inputs)

    def prepare(self,
                inputs: Any,
                data_samples: List[DataSample],
                rng: SampleRandomness,
                update_state: bool = True) -> Tuple[Any, torch.Tensor]:
        """The iteration's target (no gradient) and one mask per sample.

        Called once per training iteration; state that changes once per
        iteration (a momentum teacher) changes here.

        Args:
            inputs: The batch from the data preprocessor.
            data_samples: Its data samples.
            rng: The iteration's random draws.
            update_state: ``False`` for calls outside training
                (visualisation): no per-iteration state changes.

        Returns:
            ``(target, mask)``; both indexable by sample (dim 0).
        """
        with torch.no_grad():
            target = self.compute_target(inputs, data_samples)
        return target, self.sample_mask(inputs, data_samples, rng)

    def adapter_scope(self, scope: Tuple[str, ...]) -> Tuple[str, ...]:
        """The algorithm's children that get adapters, given the wrapper's
        ``adapter_scope``. Default: ``scope``."""
        return tuple(scope)

    def select_adversarial(self, rng: SampleRandomness,
                           ratio: float) -> torch.Tensor:
        """Local indices of the samples that get an adversarial example:
        ``round(ratio * B)`` random samples (``rng.select``)."""
        return rng.select(ratio)

    def sample_mask(self, inputs: Any, data_samples: List[DataSample],
                    rng: SampleRandomness) -> torch.Tensor:
        """Draw (with ``rng``) or read one mask per sample (B, ...)."""
        raise NotImplementedError

    def encode(self, inputs: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
        """Encoder tokens (B, N, C) of the masked ``inputs``."""
        raise NotImplementedError

    def reconstruction_loss(
            self, inputs: torch.Tensor, mask: torch.Tensor,
            target: Any) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The MIM loss of reconstructing ``target`` from masked ``inputs``.

        Returns:
            ``(loss, tokens, pred)``: the scalar loss, the encoder tokens
            (B, N, C) of this pass and the decoder's prediction.
        """
        raise NotImplementedError

    def reconstruct_image(self, pred: torch.Tensor, inputs: torch.Tensor,
                          mask: torch.Tensor) -> torch.Tensor:
        """The prediction as a normalised image (B, C, H, W), visible
        patches taken from ``inputs`` (for visualisation)."""
        raise NotImplementedError
