"""The high-frequency component of an image (AdvCL's fourth view)."""
import torch
from torch import Tensor


def high_frequency(images: Tensor, radius: float) -> Tensor:
    """``images`` without the frequencies inside a disc around DC.

    Per channel: 2-D FFT, shifted so that DC is at (H // 2, W // 2); the
    frequencies at a distance < ``radius`` from there are zeroed; the inverse
    FFT's real part. AdvCL's ``generate_high`` (radius 8 on 32 px images).
    The transform is linear and drops DC, so on normalised views it gives
    the normalised views' high frequencies: each channel's pixel-space
    component divided by the channel's std.

    Args:
        images: (B, C, H, W).
        radius: The disc's radius, in frequency bins.

    Returns:
        (B, C, H, W), the dtype of ``images``.
    """
    h, w = images.shape[-2:]
    rows = torch.arange(h, device=images.device).view(-1, 1) - h / 2
    cols = torch.arange(w, device=images.device).view(1, -1) - w / 2
    keep = (rows**2 + cols**2).sqrt() >= radius
    real = images if images.dtype in (torch.float32, torch.float64) \
        else images.float()
    spectrum = torch.fft.fftshift(torch.fft.fftn(real, dim=(-2, -1)),
                                  dim=(-2, -1))
    spectrum = spectrum * keep
    out = torch.fft.ifftn(torch.fft.ifftshift(spectrum, dim=(-2, -1)),
                          dim=(-2, -1)).real
    return out.to(images.dtype)
