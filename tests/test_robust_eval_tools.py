"""tools/eval_robust_accuracy.py and tools/certify.py end to end on tiny
generated data with tiny random classifiers (CPU): outputs, resume, and
bad options refused before any work."""
import json
from pathlib import Path

import pytest

from module_loader import load_tool
from test_eval_tools import make_model
from test_evaluation import write_image


@pytest.fixture
def folder(tmp_path):
    data = tmp_path / 'data'
    for c in ('a', 'b', 'c'):
        for j in range(2):
            write_image(str(data / c / f'{j}.png'), seed=j + 3 * ord(c))
    return data


QUICK = ['--apgd-iters', '3', '--targets', '2', '--square-queries', '10',
         '--pgd-steps', '2', '--num-workers', '0', '--batch-size', '4']


def test_eval_robust_accuracy_writes_robustbench_fields(tmp_path, folder,
                                                       monkeypatch):
    pairs = make_model(tmp_path, 3, seed=0) + make_model(tmp_path, 3, seed=1)
    out = tmp_path / 'out'
    argv = list(pairs) + ['--out-dir', str(out), '--data', str(folder),
                          '--names', 'm0', 'm1', *QUICK]
    report = load_tool('eval_robust_accuracy').main(argv)
    saved = json.loads((out / 'robust_accuracy.json').read_text())
    assert saved == json.loads(json.dumps(report))
    assert saved['command'] == ('python tools/eval_robust_accuracy.py ' +
                                ' '.join(argv))
    for model in saved['models']:
        assert (model['dataset'], model['threat_model'], model['eps'],
                model['n_examples']) == ('cifar10', 'Linf', '8/255', 6)
        assert model['autoattack_acc'] <= model['pgd20_acc'] <= \
            model['clean_acc']
        assert model['max_linf_255'] <= 8 * 1.0001
    assert (out / 'robust_accuracy.png').stat().st_size > 0
    assert sorted(p.name for p in (out / 'state').iterdir()) == [
        'm0.jsonl', 'm1.jsonl']
    # run again: everything is read from the state files, nothing attacked
    from aemim_mm.evaluation import robust_accuracy
    for name in ('pgd20', 'autoattack'):
        monkeypatch.setattr(robust_accuracy, name, lambda *a, **k: 1 / 0)
    again = load_tool('eval_robust_accuracy').main(argv)
    assert again['models'] == report['models']


@pytest.mark.parametrize('args,message', [
    (['--eps', '-1'], '--eps must be a number in (0, 255]'),
    (['--attacks', 'pgd20', 'fab'], "--attacks: unknown attacks ['fab']"),
    (['--targets', '0'], 'AutoAttackSettings.targets must be an int >= 1'),
    (['--dataset-name', 'mnist'], "invalid choice: 'mnist'"),
])
def test_eval_robust_accuracy_bad_options(tmp_path, folder, capsys, args,
                                          message):
    config, ckpt = make_model(tmp_path, 3)
    with pytest.raises(SystemExit):
        load_tool('eval_robust_accuracy').main(
            [config, ckpt, '--out-dir', str(tmp_path / 'o'), '--data',
             str(folder), *args])
    assert message in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()        # refused before any work


def test_a_checkpoint_of_another_architecture_is_refused(tmp_path, folder):
    """A 10-class checkpoint for a 3-class config: named, before any attack
    on the first (fitting) model."""
    good = make_model(tmp_path, 3, seed=0)
    config3, _ = make_model(tmp_path, 3, seed=5)
    _, ckpt10 = make_model(tmp_path, 10, seed=5)
    for tool in ('eval_robust_accuracy', 'certify'):
        extra = ['--sigma', '0.25'] if tool == 'certify' else QUICK
        with pytest.raises(SystemExit, match=f'checkpoint {ckpt10} does not '
                           'fit the model of .*ImageClassifier.*size '
                           'mismatch'):
            load_tool(tool).main(list(good) + [
                config3, ckpt10, '--out-dir', str(tmp_path / tool),
                '--data', str(folder), *extra])
        assert not (tmp_path / tool / 'state' / 'cls3_0.jsonl').exists()


def test_certify_tool(tmp_path, folder):
    config, ckpt = make_model(tmp_path, 3)
    out = tmp_path / 'cert'
    argv = [config, ckpt, '--out-dir', str(out), '--data', str(folder),
            '--sigma', '0.25', '--n0', '8', '--n', '64', '--alpha', '0.01',
            '--skip', '2', '--batch-size', '32', '--names', 'smooth']
    report = load_tool('certify').main(argv)
    model = report['models'][0]
    assert model['n_examples'] == 3                    # images 0, 2, 4
    assert [r['index'] for r in model['images']] == [0, 2, 4]
    for row in model['images']:
        assert (row['prediction'] == -1) == (row['radius'] == 0.0)
        assert row['correct'] == (row['prediction'] == row['label'])
    assert model['abstentions'] == sum(r['prediction'] == -1
                                       for r in model['images'])
    assert list(model['certified_accuracy']) == [
        '0', '0.25', '0.5', '0.75', '1', '1.25', '1.5', '2']
    assert (out / 'certified_accuracy.png').stat().st_size > 0
    assert json.loads((out / 'certify.json').read_text()) == json.loads(
        json.dumps(report))
    # interrupted after the first image: only the other two are certified
    state = out / 'state' / 'smooth.jsonl'
    state.write_text(state.read_text().splitlines()[0] + '\n')
    tool = load_tool('certify')
    calls = []
    certify = tool.certify
    tool.certify = lambda *a, **k: calls.append(1) or certify(*a, **k)
    again = tool.main(argv)
    assert len(calls) == 2
    def certificates(rows):
        return [{k: v for k, v in r.items() if k != 'seconds'} for r in rows]

    assert certificates(again['models'][0]['images']) == certificates(
        model['images'])
    # other settings on the same state: refused
    with pytest.raises(ValueError, match='holds results of other settings'):
        load_tool('certify').main(argv[:-2] + ['--seed', '1', '--names',
                                                'smooth'])


@pytest.mark.parametrize('args,message', [
    (['--sigma', '0'], '--sigma must be a number > 0'),
    (['--sigma', '0.25', '--alpha', '0.7'], '--alpha must be in (0, 0.5)'),
    (['--sigma', '0.25', '--n', '0'], '--n must be an int >= 1'),
    (['--sigma', '0.25', '--skip', '0'], '--skip must be >= 1'),
])
def test_certify_bad_options(tmp_path, folder, capsys, args, message):
    config, ckpt = make_model(tmp_path, 3)
    with pytest.raises(SystemExit):
        load_tool('certify').main([config, ckpt, '--out-dir',
                                   str(tmp_path / 'o'), *args])
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_rush_pretrain_finetune_with_noise_and_certify(tmp_path):
    """RUSH from its configs: the plain SimCLR pre-training checkpoint (as
    the Runner saves it) exported, two fine-tuning iterations with
    Gaussian noise from it, then tools/certify.py on the result."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from mmpretrain.registry import MODELS

    from aemim_mm.apis import export_encoder
    from aemim_mm.models import GaussianNoiseClsDataPreprocessor
    from test_finetune_configs import _class_folders, _two_iterations

    configs = Path(__file__).resolve().parents[1] / 'configs' / 'survey'
    init_default_scope('mmpretrain')
    pre = Config.fromfile(str(configs / 'rush_simclr_resnet18_cifar10.py'))
    assert pre.model.type == 'SimCLR'            # no adversary
    model = MODELS.build(pre.model)
    model.init_weights()
    torch.save(dict(meta=dict(epoch=500), state_dict=model.state_dict(),
                    optimizer={}), tmp_path / 'epoch_500.pth')
    encoder = export_encoder(tmp_path / 'epoch_500.pth', tmp_path / 'export',
                             formats=['mmpretrain']).paths['mmpretrain']

    data = tmp_path / 'data'
    _class_folders(data, {'train': 4, 'test': 2})
    path = configs / 'rush_resnet18_cifar10_noise0.25_ft.py'
    cfg = Config.fromfile(str(path))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.model.backbone.init_cfg.checkpoint = str(encoder)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(batch_size=4, num_workers=0,
                           persistent_workers=False, pin_memory=False)
        cfg[loader].dataset.data_root = str(data)
    _two_iterations(cfg)
    runner = Runner.from_cfg(cfg)
    assert isinstance(runner.model.data_preprocessor,
                      GaussianNoiseClsDataPreprocessor)
    assert runner.model.data_preprocessor.sigma == 0.25
    runner.model.init_weights()
    exported = torch.load(encoder, weights_only=True)['state_dict']
    torch.testing.assert_close(runner.model.backbone.conv1.weight,
                               exported['backbone.conv1.weight'])
    before = runner.model.backbone.conv1.weight.detach().clone()
    runner.train()
    assert not torch.equal(runner.model.backbone.conv1.weight, before)

    # step 3: certification of the smoothed fine-tuned classifier
    ckpt = tmp_path / 'work' / 'iter_2.pth'
    config = tmp_path / 'ft.py'
    cfg.dump(str(config))
    report = load_tool('certify').main([
        str(config), str(ckpt), '--out-dir', str(tmp_path / 'cert'),
        '--sigma', '0.25', '--n0', '4', '--n', '32', '--skip', '1',
        '--batch-size', '16'])
    rows = report['models'][0]['images']
    assert len(rows) == 4                          # the 4 test images
    assert all(r['radius'] >= 0 for r in rows)
