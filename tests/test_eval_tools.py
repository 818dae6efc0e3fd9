"""tools/eval_ood.py, tools/make_cifar10c.py and tools/eval_adv_robustness.py
end to end on tiny generated data with tiny random classifiers (CPU)."""
import json

import pytest
import torch

from aemim_mm.evaluation import (IMAGENET_A_WNIDS, IMAGENET_C_CORRUPTIONS,
                                 IMAGENET_R_WNIDS, imagenet1k_wnids)
from test_evaluation import tiny_vit_classifier, write_image
from module_loader import load_tool


CONFIG = """
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(type='ClsDataPreprocessor',
                           mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(type='VisionTransformer',
                  arch=dict(embed_dims=16, num_layers=1, num_heads=2,
                            feedforward_channels=32),
                  img_size=32, patch_size=8),
    head=dict(type='LinearClsHead', num_classes={num_classes},
              in_channels=16))
test_pipeline = [dict(type='LoadImageFromFile'),
                 dict(type='Resize', scale=32), dict(type='PackInputs')]
test_dataloader = dict(batch_size=4, dataset=dict(
    type='CustomDataset', data_root='{data_root}', pipeline=test_pipeline))
"""


def make_model(tmp_path, num_classes, data_root='', seed=0):
    config = tmp_path / f'cls{num_classes}_{seed}.py'
    config.write_text(CONFIG.format(num_classes=num_classes,
                                    data_root=data_root))
    ckpt = tmp_path / f'cls{num_classes}_{seed}.pth'
    torch.save(dict(state_dict=tiny_vit_classifier(num_classes,
                                                    seed).state_dict()), ckpt)
    return str(config), str(ckpt)


def test_eval_ood_missing_path_before_model_work(tmp_path):
    tool = load_tool('eval_ood')
    missing = str(tmp_path / 'imagenet-r')
    # neither the config nor the checkpoint exist: the data set path is
    # checked first
    with pytest.raises(FileNotFoundError, match=missing):
        tool.main([str(tmp_path / 'no.py'), str(tmp_path / 'no.pth'),
                   '--out-dir', str(tmp_path / 'o'), '--imagenet-r', missing])


def test_eval_ood_imagenet(tmp_path):
    wnids = imagenet1k_wnids()
    root = tmp_path / 'data'
    for name, folders in [('val', [wnids[0], wnids[1]]),
                          ('a', IMAGENET_A_WNIDS[:2]),
                          ('r', IMAGENET_R_WNIDS[:2]),
                          ('sketch', [wnids[5]]), ('v2', ['0', '999'])]:
        for k, folder in enumerate(folders):
            write_image(str(root / name / folder / f'{k}.png'), seed=k)
    for n in (1, 2):
        write_image(str(root / 'val' / wnids[2] /
                        f'ILSVRC2012_val_{n:08d}.png'), seed=n)
    (root / 'real.json').write_text(json.dumps([[0, 2], [1]]))
    for c in IMAGENET_C_CORRUPTIONS:
        for s in range(1, 6):
            write_image(str(root / 'c' / c / str(s) / wnids[3] / 'x.png'))
    config, ckpt = make_model(tmp_path, 1000)
    out = tmp_path / 'out'
    results = load_tool('eval_ood').main([
        config, ckpt, '--out-dir', str(out), '--num-workers', '0',
        '--imagenet-val', str(root / 'val'), '--imagenet-real',
        str(root / 'real.json'), '--imagenet-v2', str(root / 'v2'),
        '--imagenet-a', str(root / 'a'), '--imagenet-r', str(root / 'r'),
        '--imagenet-sketch', str(root / 'sketch'), '--imagenet-c',
        str(root / 'c')])
    saved = json.loads((out / 'ood_results.json').read_text())
    for key in ('imagenet', 'imagenet-real', 'imagenet-v2', 'imagenet-a',
                'imagenet-r', 'imagenet-sketch'):
        assert 0 <= saved[key] <= 100
    assert set(saved['imagenet-c']['top1']) == set(IMAGENET_C_CORRUPTIONS)
    expected = (saved['imagenet-a'] + saved['imagenet-r'] +
                saved['imagenet-sketch'] + 100 - saved['imagenet-c']['mce'])
    assert saved['score'] == pytest.approx(expected / 4)
    assert results['score'] == pytest.approx(saved['score'])
    assert (out / 'imagenet_c_heatmap.png').stat().st_size > 0


def test_make_cifar10c_and_eval(tmp_path):
    src = tmp_path / 'cifar' / 'test'
    for c in ('airplane', 'cat'):
        for j in range(3):
            write_image(str(src / c / f'{j}.jpg'), seed=j)
    corrupted = tmp_path / 'cifar_c'
    meta = load_tool('make_cifar10c').main([
        '--src', str(src), '--out', str(corrupted), '--max-per-class', '2',
        '--corruptions', 'gaussian_noise', 'brightness'])
    assert meta['images'] == 4
    assert (corrupted / 'meta.json').is_file()
    config, ckpt = make_model(tmp_path, 10)
    out = tmp_path / 'out'
    results = load_tool('eval_ood').main([
        config, ckpt, '--out-dir', str(out), '--num-workers', '0',
        '--cifar10-c', str(corrupted)])
    c10 = results['cifar10-c']
    assert sorted(c10['top1']) == ['brightness', 'gaussian_noise']
    values = [v for by_s in c10['top1'].values() for v in by_s.values()]
    assert len(values) == 10
    assert c10['mean_corruption_accuracy'] == pytest.approx(
        sum(values) / len(values))
    assert c10['clean'] is not None
    assert (out / 'cifar10_c_heatmap.png').stat().st_size > 0
    assert 'cifar10-c' in json.loads((out / 'ood_results.json').read_text())


def test_eval_adv_robustness(tmp_path):
    data = tmp_path / 'adv'
    for c in ('a', 'b'):
        for j in range(3):
            write_image(str(data / c / f'{j}.png'), seed=j)
    pairs = make_model(tmp_path, 10, seed=0) + make_model(tmp_path, 10,
                                                          seed=1)
    out = tmp_path / 'out'
    report = load_tool('eval_adv_robustness').main(
        list(pairs) + ['--out-dir', str(out), '--data', str(data),
                       '--num-samples', '4', '--pgd-steps', '2',
                       '--fgsm-eps', '0', '4', '--pgd-eps', '0', '4',
                       '--num-workers', '0', '--names', 'm0', 'm1'])
    saved = json.loads((out / 'adv_robustness.json').read_text())
    assert [m['name'] for m in saved['models']] == ['m0', 'm1']
    for m in report['models']:
        assert m['num_samples'] == 4
        assert m['fgsm'][0] == m['clean'] == m['pgd'][0]
        assert m['pgd'][4] <= m['clean']
    assert (out / 'adv_robustness.png').stat().st_size > 0
    # without --data: the config's own test set
    config, ckpt = make_model(tmp_path, 10, data_root=str(data), seed=2)
    report = load_tool('eval_adv_robustness').main([
        config, ckpt, '--out-dir', str(tmp_path / 'out2'), '--pgd-steps',
        '1', '--fgsm-eps', '0', '--pgd-eps', '2', '--num-workers', '0'])
    assert report['models'][0]['num_samples'] == 6


def test_eval_adv_robustness_bad_args(tmp_path, capsys):
    tool = load_tool('eval_adv_robustness')
    config, ckpt = make_model(tmp_path, 10)
    with pytest.raises(SystemExit):
        tool.main([config, '--out-dir', str(tmp_path)])
    assert 'pairs' in capsys.readouterr().err
    missing = str(tmp_path / 'nodata')
    with pytest.raises(SystemExit):
        tool.main([config, ckpt, '--out-dir', str(tmp_path), '--data',
                   missing])
    assert missing in capsys.readouterr().err
