"""A data preprocessor that turns an image's views into batch entries:
AdPE's multi-crop (``--num_crop 4``: each image gives 4 independent crops,
each a sample of the MIM loss) on mmpretrain's MAE / SimMIM, whose ``loss``
takes one batch tensor."""
from typing import Optional

import torch

from mmpretrain.models.utils import SelfSupDataPreprocessor
from mmpretrain.registry import MODELS


@MODELS.register_module()
class ViewsAsBatchDataPreprocessor(SelfSupDataPreprocessor):
    """``SelfSupDataPreprocessor`` whose V views of B images (mmpretrain's
    ``MultiView`` transform) leave as one (V * B, C, H, W) batch, view-major
    (all images' first crops, then their second ...), each data sample
    repeated V times in the same order. A single view passes unchanged.
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        out = super().forward(data, training)
        views = out['inputs']
        if not isinstance(views, list):
            return out
        samples: Optional[list] = out['data_samples']
        return dict(inputs=torch.cat(views, dim=0),
                    data_samples=None if samples is None else
                    samples * len(views))
