"""Robustness evaluation components: subsets, metrics, mCE, data sets,
corruption generation and the FGSM / PGD evaluation (CPU, tiny models)."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from PIL import Image

import aemim_mm  # noqa: F401
from aemim_mm.evaluation import (ALEXNET_ERR, IMAGENET_A_WNIDS,
                                 IMAGENET_C_CORRUPTIONS, IMAGENET_R_WNIDS,
                                 ImageNetClassFolders, ImageNetReal,
                                 RealAccuracy, SubsetAccuracy,
                                 corruption_errors, imagenet1k_wnids,
                                 mean_corruption_error, ood_score,
                                 restrict_to_subset, subset_indices)
from aemim_mm.evaluation.ood import check_paths

TIMM_INFO = osp.join(osp.dirname(__import__('timm').__file__), 'data', '_info')


def tiny_vit_classifier(num_classes: int, seed: int = 0):
    """A randomly initialised 1-layer ViT ImageClassifier on 32 px images."""
    torch.manual_seed(seed)
    model = MODELS.build(
        dict(type='ImageClassifier', _scope_='mmpretrain',
             data_preprocessor=dict(type='ClsDataPreprocessor',
                                    mean=[123.675, 116.28, 103.53],
                                    std=[58.395, 57.12, 57.375], to_rgb=True),
             backbone=dict(type='VisionTransformer',
                           arch=dict(embed_dims=16, num_layers=1, num_heads=2,
                                     feedforward_channels=32),
                           img_size=32, patch_size=8),
             head=dict(type='LinearClsHead', num_classes=num_classes,
                       in_channels=16)))
    return model.eval()


def write_image(path, size=32, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([xx * 255 / size, yy * 255 / size,
                     np.full_like(xx, rng.integers(0, 255))], -1)
    img = np.clip(base + rng.normal(0, 10, base.shape), 0, 255)
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(img.astype(np.uint8)).save(path)


# ---------------------------------------------------------------- subsets
@pytest.mark.parametrize('subset,wnids,name', [
    ('imagenet-a', IMAGENET_A_WNIDS, 'imagenet_a'),
    ('imagenet-r', IMAGENET_R_WNIDS, 'imagenet_r'),
])
def test_subset_lists_match_timm(subset, wnids, name):
    with open(osp.join(TIMM_INFO, f'{name}_synsets.txt')) as f:
        assert list(wnids) == f.read().split()
    with open(osp.join(TIMM_INFO, f'{name}_indices.txt')) as f:
        assert subset_indices(subset) == [int(v) for v in f.read().split()]
    assert len(set(wnids)) == 200


def test_subset_known_indices():
    # hendrycks/natural-adv-examples thousand_k_to_200: 6 -> 0, 988 -> 199
    a = subset_indices('imagenet-a')
    assert (a[0], a[-1]) == (6, 988)
    # hendrycks/imagenet-r: first wnid n01443537 (goldfish) is class 1
    assert subset_indices('imagenet-r')[0] == 1
    assert imagenet1k_wnids()[1] == 'n01443537'
    with pytest.raises(ValueError, match='imagenet-x'):
        subset_indices('imagenet-x')


def _sample(scores, label):
    return dict(pred_score=torch.as_tensor(scores, dtype=torch.float),
                gt_label=torch.tensor([label]))


@pytest.mark.parametrize('subset', ['imagenet-a', 'imagenet-r'])
def test_subset_accuracy_restricts_logits(subset):
    idx = subset_indices(subset)
    outside = next(i for i in range(1000) if i not in set(idx))
    true, other = idx[3], idx[7]
    samples = []
    # 1) peak at the true class -> correct
    s = torch.zeros(1000)
    s[true] = 5
    samples.append(_sample(s, true))
    # 2) global peak outside the subset, true class best inside -> correct
    s = torch.zeros(1000)
    s[outside], s[true] = 9, 3
    samples.append(_sample(s, true))
    # 3) another subset class beats the true one -> wrong
    s = torch.zeros(1000)
    s[outside], s[other], s[true] = 9, 4, 3
    samples.append(_sample(s, true))
    metric = SubsetAccuracy(subset=subset)
    metric.process(None, samples)
    result = metric.compute_metrics(metric.results)
    assert result['top1'] == pytest.approx(200 / 3)
    # the unrestricted argmax would get only the first right
    scores = torch.stack([x['pred_score'] for x in samples])
    assert (scores.argmax(1) == true).tolist() == [True, False, False]


def test_restrict_to_subset_rejects_outside_label():
    with pytest.raises(ValueError, match='not in the class subset'):
        restrict_to_subset(torch.zeros(2, 10), torch.tensor([1, 5]), [1, 2])


def test_real_accuracy():
    metric = RealAccuracy()
    s = torch.zeros(4)
    s[2] = 1
    metric.process(None, [
        dict(pred_score=s, gt_label=torch.tensor([1, 2])),
        dict(pred_score=s, gt_label=torch.tensor([3])),
    ])
    assert metric.compute_metrics(metric.results) == dict(top1=50.0)


# ---------------------------------------------------------------- mCE
def test_mce_hand_computed():
    alex = {'gaussian_noise': 0.5, 'fog': 0.8}
    top1 = {'gaussian_noise': {1: 90, 2: 80, 3: 70, 4: 60, 5: 50},
            'fog': {s: 60 for s in range(1, 6)}}
    # errors 10..50 sum 150 / (5 * 50) = 60 %; 5 * 40 / (5 * 80) = 50 %
    ces = corruption_errors(top1, alex)
    assert ces == pytest.approx({'gaussian_noise': 60.0, 'fog': 50.0})
    assert mean_corruption_error(top1, ['gaussian_noise', 'fog'],
                                 alex) == pytest.approx(55.0)


def test_mce_alexnet_itself_is_100():
    top1 = {c: {s: 100 - 100 * ALEXNET_ERR[c] for s in range(1, 6)}
            for c in IMAGENET_C_CORRUPTIONS}
    assert len(ALEXNET_ERR) == 15
    assert mean_corruption_error(top1) == pytest.approx(100.0)


def test_mce_errors():
    with pytest.raises(ValueError, match='severities'):
        corruption_errors({'fog': {1: 50}})
    with pytest.raises(ValueError, match='speckle_noise'):
        corruption_errors({'speckle_noise': {s: 50 for s in range(1, 6)}})
    with pytest.raises(ValueError, match='missing'):
        mean_corruption_error({'fog': {s: 50 for s in range(1, 6)}})


def test_ood_score():
    assert ood_score(30, 40, 20, 70) == pytest.approx(30.0)


# ---------------------------------------------------------------- paths
@pytest.mark.parametrize('key', ['imagenet_a', 'imagenet_r', 'imagenet_v2',
                                 'imagenet_sketch', 'imagenet_c',
                                 'imagenet_val', 'imagenet_real',
                                 'cifar10_c'])
def test_missing_path_is_named(tmp_path, key):
    missing = str(tmp_path / f'no_{key}')
    paths = {key: missing}
    if key == 'imagenet_real':
        paths['imagenet_val'] = str(tmp_path)
    with pytest.raises(FileNotFoundError, match=missing):
        check_paths(paths)


def test_missing_imagenet_c_severity_is_named(tmp_path):
    for c in IMAGENET_C_CORRUPTIONS:
        for s in range(1, 6):
            if (c, s) != ('fog', 3):
                os.makedirs(tmp_path / c / str(s))
    with pytest.raises(FileNotFoundError, match=osp.join('fog', '3')):
        check_paths({'imagenet_c': str(tmp_path)})


def test_real_needs_val(tmp_path):
    real = tmp_path / 'real.json'
    real.write_text('[]')
    with pytest.raises(ValueError, match='--imagenet-val'):
        check_paths({'imagenet_real': str(real)})


# ---------------------------------------------------------------- data sets
def test_class_folders_label_by_wnid_and_index(tmp_path):
    wnids = imagenet1k_wnids()
    for i, folder in enumerate([IMAGENET_A_WNIDS[5], wnids[999], '17']):
        for j in range(3):
            write_image(str(tmp_path / folder / f'{j}.png'), seed=i * 10 + j)
    ds = ImageNetClassFolders(data_root=str(tmp_path), max_per_class=2)
    labels = sorted(ds.get_data_info(i)['gt_label'] for i in range(len(ds)))
    assert labels == sorted([wnids.index(IMAGENET_A_WNIDS[5])] * 2 +
                            [999] * 2 + [17] * 2)
    os.makedirs(tmp_path / 'cats')
    write_image(str(tmp_path / 'cats' / 'x.png'))
    with pytest.raises(ValueError, match='cats'):
        ImageNetClassFolders(data_root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match='nowhere'):
        ImageNetClassFolders(data_root=str(tmp_path / 'nowhere'))


@pytest.mark.parametrize('max_per_class', [0, True, 1.5, '2'])
def test_class_folders_reject_bad_max_per_class(tmp_path, max_per_class):
    write_image(str(tmp_path / 'n01440764' / 'x.png'))
    with pytest.raises(ValueError, match='max_per_class must be None or an '
                       f'int >= 1, got {max_per_class!r}'):
        ImageNetClassFolders(data_root=str(tmp_path),
                             max_per_class=max_per_class)


def test_imagenet_real_dataset(tmp_path):
    real = [[3], [], [5, 7]]
    (tmp_path / 'real.json').write_text(json.dumps(real))
    for n in (1, 2, 3):
        write_image(str(tmp_path / 'val' / 'n01440764' /
                        f'ILSVRC2012_val_{n:08d}.JPEG'), seed=n)
    ds = ImageNetReal(data_root=str(tmp_path / 'val'),
                      real_json=str(tmp_path / 'real.json'))
    assert len(ds) == 2  # the image without labels is left out
    assert [ds.get_data_info(i)['gt_label'] for i in range(2)] == [[3], [5, 7]]


# ---------------------------------------------------------------- CIFAR-10-C
def test_corruption_names_all_19():
    from aemim_mm.evaluation.corruption import corruption_names
    assert len(corruption_names('all')) == 19


def test_make_corrupted_set(tmp_path):
    from aemim_mm.evaluation.corruption import make_corrupted_set
    src = tmp_path / 'src'
    for c in ('cat', 'dog'):
        for j in range(3):
            write_image(str(src / c / f'{j}.jpg'), seed=j)
    corruptions = ['gaussian_noise', 'contrast', 'pixelate', 'fog']
    meta = make_corrupted_set(str(src), str(tmp_path / 'out'), corruptions,
                              max_per_class=2, log_interval_s=0)
    assert meta['images'] == 4 and meta['corruptions'] == corruptions
    diffs = {1: [], 5: []}
    for c in corruptions:
        for s in range(1, 6):
            files = sorted(os.listdir(tmp_path / 'out' / c / str(s) / 'cat'))
            assert files == ['0.png', '1.png']
        for s in (1, 5):
            for cls in ('cat', 'dog'):
                for name in ('0.png', '1.png'):
                    clean = np.asarray(Image.open(
                        tmp_path / 'out' / 'clean' / cls / name))
                    bad = np.asarray(Image.open(
                        tmp_path / 'out' / c / str(s) / cls / name))
                    assert bad.shape == clean.shape == (32, 32, 3)
                    assert bad.dtype == np.uint8
                    diffs[s].append(np.abs(bad.astype(float) - clean).mean())
    assert np.mean(diffs[5]) > np.mean(diffs[1]) > 0
    with pytest.raises(ValueError, match='blurry'):
        make_corrupted_set(str(src), str(tmp_path / 'o2'), ['blurry'])
    with pytest.raises(FileNotFoundError, match='nosrc'):
        make_corrupted_set(str(tmp_path / 'nosrc'), str(tmp_path / 'o3'))


# ---------------------------------------------------------------- attacks
class _Tensors(torch.utils.data.Dataset):
    """Packed samples as PackInputs gives them (uint8 CHW + DataSample)."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return dict(inputs=self.images[i],
                    data_samples=DataSample().set_gt_label(int(self.labels[i])))


@pytest.fixture(scope='module')
def attackable():
    """Tiny classifier + images labelled with its own clean predictions."""
    from aemim_mm.evaluation.adversarial import PixelSpaceClassifier
    model = tiny_vit_classifier(10)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, 3, 32, 32), generator=g,
                           dtype=torch.uint8)
    with torch.no_grad():
        labels = PixelSpaceClassifier(model)(images.float() / 255).argmax(1)
    return model, _Tensors(images, labels)


def test_pixel_space_classifier_matches_test_step(attackable):
    from aemim_mm.evaluation.adversarial import PixelSpaceClassifier
    model, data = attackable
    batch = dict(inputs=[data[i]['inputs'] for i in range(4)],
                 data_samples=[data[i]['data_samples'] for i in range(4)])
    with torch.no_grad():
        expected = torch.stack(
            [s.pred_score for s in model.test_step(batch)]).argmax(1)
        for pixel_range in (1.0, 255.0):
            x = torch.stack(batch['inputs']).float() * pixel_range / 255
            got = PixelSpaceClassifier(model, pixel_range)(x).argmax(1)
            torch.testing.assert_close(got, expected)


def test_attacks_reduce_accuracy_and_leave_params(attackable):
    from aemim_mm.evaluation.adversarial import evaluate_attacks
    model, data = attackable
    flags = [p.requires_grad for p in model.parameters()]
    result = evaluate_attacks(model, data, fgsm_eps=(0, 8, 32),
                              pgd_eps=(0, 8, 32), pgd_steps=5,
                              batch_size=6, num_workers=0, device='cpu',
                              log_interval_s=0)
    assert result['clean'] == 100.0 and result['num_samples'] == 12
    assert result['fgsm'][0] == result['clean'] == result['pgd'][0]
    for eps in (8, 32):
        assert result['pgd'][eps] <= result['fgsm'][eps] <= result['clean']
    assert result['pgd'][32] < result['clean']
    assert all(p.grad is None for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert not model.training


def test_attack_arguments_are_checked(attackable):
    from aemim_mm.evaluation.adversarial import (PixelSpaceClassifier,
                                                 evaluate_attacks)
    model, data = attackable
    with pytest.raises(ValueError, match='pgd_steps'):
        evaluate_attacks(model, data, pgd_steps=0)
    with pytest.raises(ValueError, match='eps'):
        evaluate_attacks(model, data, fgsm_eps=(-1, ))
    with pytest.raises(ValueError, match='pixel_range'):
        PixelSpaceClassifier(model, 2.0)


def test_load_classifier_takes_the_configs_data_preprocessor(tmp_path):
    """The config's top-level preprocessor (mean/std/to_rgb) reaches the
    model, as in mmengine's Runner; without it the classifier would be
    evaluated on unnormalised pixels."""
    from pathlib import Path

    from aemim_mm.evaluation.inference import load_classifier
    repo = Path(__file__).resolve().parents[1]
    model, _ = load_classifier(
        str(repo / 'configs' / 'finetune' / 'vit-t-p4_cifar10_ft.py'), None,
        cfg_options={'model.backbone.init_cfg': None})
    prep = model.data_preprocessor
    assert prep._enable_normalize and prep.to_rgb
    assert prep.mean.flatten().tolist() == pytest.approx(
        [125.307, 122.961, 113.8575])
