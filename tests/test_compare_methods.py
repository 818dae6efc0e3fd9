"""tools/compare_methods.py (aemim_mm/evaluation/comparison.py): every
method through pre-training, export, the fine-tuning protocols and the
robust evaluation, with the smoke preset on generated CIFAR-size images."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aemim_mm.evaluation import comparison
from module_loader import load_tool

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def cifar_like(tmp_path_factory) -> Path:
    """train/ and test/ class folders of 32 px images (3 classes)."""
    root = tmp_path_factory.mktemp('cifar')
    rng = np.random.default_rng(0)
    for split, count in (('train', 4), ('test', 2)):
        for label, name in enumerate(('airplane', 'bird', 'cat')):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(image).save(folder / f'{i}.png')
    return root


def test_every_shipped_pretraining_config_is_a_method():
    """The table has each method whose config exists: the baselines (RUSH's
    plain SimCLR is the SimCLR one; MAE+ for AdPE), AEMIM, Fast AEMIM,
    AEMIM + AdPE, every CIFAR-10 ResNet-18 survey config but the variants
    (_ip, _hn) and AdPE on MAE+."""
    methods = comparison.available_methods()
    assert [m.name for m in methods] == [m.name for m in comparison.METHODS]
    baselines = {Path(m.config).name for m in methods
                 if m.family == 'baseline'}
    folder = REPO / 'configs' / 'survey'
    survey = sorted(p.name for p in [
        *folder.glob('*_resnet18_cifar10.py'),
        *folder.glob('adpe_mae-plus_vit-t-p4_cifar10_*.py')]
        if p.name not in baselines)
    assert sorted(Path(m.config).name for m in methods
                  if m.family == 'survey') == survey
    for m in methods:
        assert (REPO / 'configs' / 'eval' /
                f'slf_{m.encoder}_cifar10.py').is_file()


@pytest.mark.parametrize('args,message', [
    (['--methods', 'rocl', 'simclr_x'], "unknown methods ['simclr_x']"),
    (['--protocols', 'lp'], "unknown protocols ['lp']"),
    (['--preset', 'huge'], "invalid choice: 'huge'"),
])
def test_bad_options_are_refused(args, message, tmp_path, cifar_like,
                                 capsys):
    argv = ['--preset', 'smoke', '--out-dir', str(tmp_path / 'o'),
            '--data', str(cifar_like)]
    with pytest.raises(SystemExit):
        load_tool('compare_methods').main(argv + args)
    assert message in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()


def test_missing_data_is_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_tool('compare_methods').main([
            '--preset', 'smoke', '--out-dir', str(tmp_path / 'o'),
            '--data', str(tmp_path)])
    assert 'has no train/ folder' in capsys.readouterr().err


def test_table_format():
    rows = [dict(method='rocl', family='survey', protocol='slf',
                 clean_acc=80.0, pgd20_acc=40.5, autoattack_acc=38.25)]
    assert comparison.format_table(rows).splitlines()[-1] == \
        '| rocl | survey | slf | 80.00 | 40.50 | 38.25 |'


@pytest.mark.slow
def test_smoke_preset_runs_every_method(tmp_path, cifar_like, monkeypatch):
    """The CI run of the comparison: every method, three protocols, the
    table, the JSON and a plot per protocol; then a rerun that trains and
    attacks nothing."""
    out = tmp_path / 'compare'
    protocols = ['slf', 'alf', 'aff-trades']
    argv = ['--preset', 'smoke', '--out-dir', str(out), '--data',
            str(cifar_like), '--protocols', *protocols]
    report = load_tool('compare_methods').main(argv)
    methods = comparison.available_methods()
    assert [(r['method'], r['protocol']) for r in report['rows']] == [
        (m.name, p) for m in methods for p in protocols]
    for row in report['rows']:
        assert 0 <= row['autoattack_acc'] <= row['pgd20_acc'] <= \
            row['clean_acc'] <= 100
        assert (row['n_examples'], row['eps']) == (4, '8/255')
    saved = json.loads((out / 'comparison.json').read_text())
    assert saved['table'] == comparison.format_table(saved['rows'])
    assert saved['command'] == ('python tools/compare_methods.py ' +
                                ' '.join(argv))
    assert saved['table'] in (out / 'comparison.md').read_text()
    for p in protocols:
        assert (out / f'comparison_{p}.png').stat().st_size > 0
    # every stage done: a rerun trains, exports and attacks nothing
    for name in ('train', ):
        monkeypatch.setattr(comparison, name, lambda *a, **k: 1 / 0)
    from aemim_mm import apis
    monkeypatch.setattr(apis, 'export_encoder', lambda *a, **k: 1 / 0)
    from aemim_mm.evaluation import robust_accuracy
    monkeypatch.setattr(robust_accuracy, 'evaluate_robust_accuracy',
                        lambda *a, **k: 1 / 0)
    again = load_tool('compare_methods').main(argv)
    assert again['rows'] == report['rows']
