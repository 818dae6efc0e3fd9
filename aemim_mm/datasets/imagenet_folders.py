"""ImageNet-style evaluation data sets in class folders (in ``DATASETS``).

mmpretrain 1.2 has ``ImageNet`` / ``CustomDataset`` but no data set class for
ImageNet-A/-R/-Sketch/-V2/-C or ImageNet-Real. Those data sets ship as class
folders, often only a subset of the 1000 classes (A and R have 200), so the
label must come from the folder *name*, not from its rank among the folders as
in ``CustomDataset``. These two classes reuse ``CustomDataset``'s file
discovery and only change the labelling.
"""
import json
import os.path as osp
import re
from collections import defaultdict
from typing import Dict, List, Optional

from mmpretrain.datasets import CustomDataset
from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
from mmpretrain.datasets.custom import find_folders, get_samples
from mmpretrain.registry import DATASETS

from ..utils.checks import is_int
from .imagenet_subsets import imagenet1k_wnid_to_index

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                  '.tiff', '.webp')


def folder_to_imagenet_index(folder: str) -> Optional[int]:
    """ImageNet-1K index of a class folder: a wnid, or an index 0..999.

    ImageNet-A/-R/-Sketch/-C use wnid folder names (``n01440764``);
    ImageNet-V2's release uses the class index (``0`` .. ``999``).

    Returns:
        The index, or ``None`` if the name is neither.
    """
    to_index = imagenet1k_wnid_to_index()
    if folder in to_index:
        return to_index[folder]
    if folder.isdigit() and 0 <= int(folder) < 1000:
        return int(folder)
    return None


def _cap_per_class(samples: List[tuple], max_per_class: Optional[int]):
    if max_per_class is None:
        return samples
    taken: Dict[int, int] = defaultdict(int)
    kept = []
    for path, label in samples:
        if taken[label] < max_per_class:
            taken[label] += 1
            kept.append((path, label))
    return kept


@DATASETS.register_module()
class ImageNetClassFolders(CustomDataset):
    """ImageNet-style class folders labelled with ImageNet-1K indices.

    Layout: ``data_root/<wnid or 0..999>/**/<image>``; any subset of the 1000
    classes may be present (ImageNet-A/-R: 200). The label of an image is the
    ImageNet-1K index of its folder (sorted-wnid order, as mmpretrain's
    ``ImageNet``), so a 1000-way classifier scores it directly.

    Args:
        data_root: The folder holding the class folders.
        max_per_class: Keep at most this many images per class (the first in
            sorted order); ``None`` keeps all.
        **kwargs: Passed to :class:`CustomDataset` (``pipeline``, ...).

    Raises:
        FileNotFoundError: If ``data_root`` is not a folder.
        ValueError: If a folder name is neither a wnid nor an index, or
            ``max_per_class`` is not a positive int.
    """

    METAINFO = {'classes': IMAGENET_CATEGORIES}

    def __init__(self, data_root: str, max_per_class: Optional[int] = None,
                 **kwargs):
        if not osp.isdir(data_root):
            raise FileNotFoundError(f'data set folder not found: {data_root}')
        if max_per_class is not None and (not is_int(max_per_class)
                                          or max_per_class < 1):
            raise ValueError('max_per_class must be None or an int >= 1, got '
                             f'{max_per_class!r}')
        self.max_per_class = max_per_class
        kwargs.setdefault('extensions', IMG_EXTENSIONS)
        super().__init__(data_root=data_root, data_prefix='', ann_file='',
                         with_label=True, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Find the images; label each by its folder's ImageNet-1K index."""
        root = self.img_prefix
        folders, _ = find_folders(root)
        folder_to_idx, unknown = {}, []
        for folder in folders:
            index = folder_to_imagenet_index(folder)
            if index is None:
                unknown.append(folder)
            else:
                folder_to_idx[folder] = index
        if unknown:
            raise ValueError(
                f'{root}: class folders must be ImageNet-1K wnids (n01440764) '
                f'or indices 0..999; got {unknown[:5]}')
        samples, _ = get_samples(root, folder_to_idx, self.is_valid_file)
        if not samples:
            raise RuntimeError(f'no images ({", ".join(self.extensions)}) in '
                               f'the class folders of {root}')
        samples = _cap_per_class(samples, self.max_per_class)
        return [
            dict(img_path=osp.join(root, path), gt_label=int(label))
            for path, label in samples
        ]


_VAL_NUMBER = re.compile(r'ILSVRC2012_val_(\d{8})')


@DATASETS.register_module()
class ImageNetReal(CustomDataset):
    """ImageNet val images with the ImageNet-Real ("ReaL") labels.

    ``real.json`` (Beyer et al., 2020) is a list of 50,000 label lists, one per
    val image in the order ``ILSVRC2012_val_00000001`` ... The images may lie
    flat or in class folders (found recursively, by file name). Images whose
    label list is empty are left out, as in the ReaL protocol. ``gt_label``
    is the list of correct labels.

    Args:
        data_root: The ImageNet val image folder.
        real_json: The ``real.json`` file.
        max_images: Keep at most the first this many images (sorted by val
            number); ``None`` keeps all.
        **kwargs: Passed to :class:`CustomDataset`.

    Raises:
        FileNotFoundError: If ``data_root`` or ``real_json`` is missing.
    """

    METAINFO = {'classes': IMAGENET_CATEGORIES}

    def __init__(self, data_root: str, real_json: str,
                 max_images: Optional[int] = None, **kwargs):
        if not osp.isfile(real_json):
            raise FileNotFoundError(f'ImageNet-Real labels not found: '
                                    f'{real_json}')
        if not osp.isdir(data_root):
            raise FileNotFoundError(f'ImageNet val folder not found: '
                                    f'{data_root}')
        self.real_json = real_json
        self.max_images = max_images
        kwargs.setdefault('extensions', IMG_EXTENSIONS)
        super().__init__(data_root=data_root, data_prefix='', ann_file='',
                         with_label=False, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Pair every ``ILSVRC2012_val_*`` image with its ReaL labels."""
        with open(self.real_json) as f:
            real = json.load(f)
        root = self.img_prefix
        files, _ = get_samples(root, None, self.is_valid_file)
        numbered = []
        for path in files:
            match = _VAL_NUMBER.search(osp.basename(path))
            if match:
                numbered.append((int(match.group(1)), path))
        if not numbered:
            raise RuntimeError(f'no ILSVRC2012_val_XXXXXXXX images in {root}')
        numbered.sort()
        data_list = []
        for number, path in numbered:
            if number > len(real):
                raise ValueError(f'{path}: val number {number} is beyond the '
                                 f'{len(real)} entries of {self.real_json}')
            labels = real[number - 1]
            if labels:
                data_list.append(dict(img_path=osp.join(root, path),
                                      gt_label=[int(v) for v in labels]))
        if self.max_images is not None:
            data_list = data_list[:self.max_images]
        return data_list
