"""Patch embeddings as reshape + matrix product, for the attack's gradients.

A ViT's patch embedding is a convolution whose kernel equals its stride: it
cuts the image into non-overlapping patches and projects each with one
matrix. The attack differentiates the encoder with respect to the image,
so every attack step runs that convolution's backward-data pass. On a CPU,
oneDNN's backward-data for such a convolution is slow, and the same function
written as a reshape and one matrix product is faster in both directions
(the README's Performance section). On a GPU the convolution runs
unchanged.

:func:`patchify_as_matmul` swaps the forward of every such convolution of a
module for the reshape + matmul form, on CPU inputs, for the duration of a
block; outside the block the module is untouched. The result is the same
function (tested with ``torch.testing.assert_close``, values and gradients).
"""
from contextlib import contextmanager
from typing import Iterator, List

import torch
from torch import nn


def is_patchify_conv(module: nn.Module) -> bool:
    """Whether ``module`` is a 2-D convolution over non-overlapping patches."""
    return (type(module) is nn.Conv2d
            and module.kernel_size == module.stride
            and module.padding in ((0, 0), 'valid')
            and module.dilation == (1, 1) and module.groups == 1
            and module.padding_mode == 'zeros')


def patchify_linear(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` for a patchify convolution, as reshape + matmul.

    Args:
        x: Images (B, C, H, W); H and W need not be multiples of the patch
            size (the remainder is dropped, as the convolution drops it).
        conv: A convolution for which :func:`is_patchify_conv` holds.

    Returns:
        The convolution's output (B, C_out, H // kh, W // kw).
    """
    num, chans, height, width = x.shape
    kh, kw = conv.kernel_size
    gh, gw = height // kh, width // kw
    x = x[:, :, :gh * kh, :gw * kw]
    patches = (x.reshape(num, chans, gh, kh, gw, kw)
               .permute(0, 2, 4, 1, 3, 5)
               .reshape(num * gh * gw, chans * kh * kw))
    weight = conv.weight.reshape(conv.out_channels, -1)
    if conv.bias is None:
        out = patches @ weight.t()
    else:
        out = torch.addmm(conv.bias, patches, weight.t())
    return out.reshape(num, gh, gw, conv.out_channels).permute(0, 3, 1, 2)


@contextmanager
def patchify_as_matmul(module: nn.Module) -> Iterator[List[str]]:
    """Run ``module``'s patchify convolutions as reshape + matmul on CPU.

    Args:
        module: Any module (the MIM algorithm, its backbone).

    Yields:
        The qualified names of the swapped convolutions.
    """
    convs = [(name, m) for name, m in module.named_modules()
             if is_patchify_conv(m) and 'forward' not in m.__dict__]

    def fast_forward(conv: nn.Conv2d):
        def forward(x: torch.Tensor) -> torch.Tensor:
            if x.device.type != 'cpu':
                return nn.Conv2d.forward(conv, x)
            return patchify_linear(x, conv)
        return forward

    for _, conv in convs:
        conv.forward = fast_forward(conv)
    try:
        yield [name for name, _ in convs]
    finally:
        for _, conv in convs:
            del conv.forward        # back to the class's method
