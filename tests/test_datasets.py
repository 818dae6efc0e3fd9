"""Tests of :class:`aemim_mm.datasets.SkimagePhotos`."""
import numpy as np
import pytest
import skimage.data
import torch

from aemim_mm.datasets import SkimagePhotos
from aemim_mm.datasets.skimage_photos import (DEFAULT_PHOTOS,
                                              GRAYSCALE_PHOTOS,
                                              load_skimage_photo)
from mmpretrain.registry import DATASETS


def test_default_photos_load_as_bgr():
    ds = SkimagePhotos()
    assert len(ds) == ds.num_photos == len(DEFAULT_PHOTOS)
    for i, name in enumerate(DEFAULT_PHOTOS):
        info = ds[i]  # empty pipeline: the data info itself
        img = info['img']
        assert info['photo'] == name
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert info['img_shape'] == img.shape[:2] == info['ori_shape']
    # BGR: channel-reversed skimage RGB
    astro = ds[DEFAULT_PHOTOS.index('astronaut')]['img']
    np.testing.assert_array_equal(astro[..., ::-1], skimage.data.astronaut())


@pytest.mark.parametrize('repeat', [1, 3, 10])
def test_repeat_sets_length_and_cycles_photos(repeat):
    names = ['astronaut', 'coffee']
    ds = SkimagePhotos(names=names, repeat=repeat)
    assert len(ds) == 2 * repeat
    assert [ds.get_data_info(i)['photo'] for i in range(len(ds))] == \
        names * repeat
    assert ds.get_data_info(len(ds) - 1)['sample_idx'] == len(ds) - 1
    assert ds.get_data_info(-1)['photo'] == 'coffee'
    with pytest.raises(IndexError):
        ds.get_data_info(len(ds))


def test_samples_are_copies():
    ds = SkimagePhotos(names=['chelsea'], repeat=2)
    a = ds.get_data_info(0)
    a['img'][:] = 0
    assert ds.get_data_info(0)['img'].max() > 0


def test_grayscale_converted_and_max_size():
    ds = SkimagePhotos(names=['camera'], max_size=100)
    img = ds[0]['img']
    assert img.shape == (100, 100, 3)
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] ==
                                                   img[..., 2]).all()
    assert set(GRAYSCALE_PHOTOS).isdisjoint(DEFAULT_PHOTOS)


def test_pipeline_random_crops_differ():
    pipeline = [
        dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.2, 1.0)),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackInputs')
    ]
    ds = DATASETS.build(
        dict(type='SkimagePhotos', names=['astronaut'], repeat=2,
             max_size=128, pipeline=pipeline))
    a, b = ds[0], ds[1]
    assert a['inputs'].shape == (3, 32, 32) and a['inputs'].dtype == \
        torch.uint8
    assert not torch.equal(a['inputs'], b['inputs'])


def test_bad_name_is_named_in_error():
    with pytest.raises(ValueError, match="'not_a_photo'"):
        SkimagePhotos(names=['astronaut', 'not_a_photo'])
    with pytest.raises(ValueError, match="'download_all'"):
        load_skimage_photo('download_all')


def test_unloadable_photo_is_named_in_error(monkeypatch):
    def boom():
        raise ModuleNotFoundError('needs pooch')

    monkeypatch.setattr(skimage.data, 'astronaut', boom)
    with pytest.raises(RuntimeError, match="'astronaut'.*needs pooch"):
        SkimagePhotos(names=['astronaut'])


@pytest.mark.parametrize(
    'kwargs, match',
    [(dict(names=[]), 'names'), (dict(names=['coffee', 'coffee']),
                                 'duplicates'),
     (dict(repeat=0), 'repeat'), (dict(repeat=1.5), 'repeat'),
     (dict(max_size=0), 'max_size')])
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SkimagePhotos(**kwargs)


def test_imagenet_folders_former_import_paths():
    from aemim_mm import datasets, evaluation
    from aemim_mm.evaluation import datasets as former
    from aemim_mm.evaluation import imagenet_subsets as former_subsets
    for name in ('ImageNetClassFolders', 'ImageNetReal'):
        assert DATASETS.get(name) is getattr(datasets, name)
        assert getattr(evaluation, name) is getattr(datasets, name)
        assert getattr(former, name) is getattr(datasets, name)
    assert former_subsets.subset_indices is \
        datasets.imagenet_subsets.subset_indices
