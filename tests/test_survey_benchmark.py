"""``tools/benchmark.py --suite survey`` on its tiny ``survey_smoke`` preset,
the library behind it (:mod:`aemim_mm.benchmark.survey`), and
docs/survey_cost.md against the committed results
(docs/results/benchmark_survey_cpu.json, benchmark_survey_adpe_adios_cpu.json
and benchmark_survey_mim_aemim_cpu.json)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import aemim_mm.benchmark as bench
from module_loader import load_tool

REPO = Path(__file__).resolve().parents[1]
LINUX = sys.platform.startswith('linux')
SMOKE = bench.SURVEY_PRESETS['survey_smoke']
DOC = REPO / 'docs' / 'survey_cost.md'
#: The method class and the algorithm class of each method's config.
EXPECTED = {'rocl': ('RoCL', 'SimCLR'), 'clae': ('CLAE', 'SimCLR'),
            'acl': ('ACL', 'SimCLR'), 'advcl': ('AdvCL', 'SimCLR'),
            'arocl': ('ARoCL', 'SimCLR'), 'aadvcl': ('AAdvCL', 'SimCLR'),
            'byorl': ('BYORL', 'BYOL'),
            'byorl_simsiam': ('BYORL', 'SimSiam'),
            'adco': ('AdCo', 'MoCo'), 'caco': ('CaCo', 'MoCoV3'),
            'ifm': ('IFM', 'MoCo'), 'mochi': ('MoCHi', 'MoCo'),
            'hcl': ('HCL', 'SimCLR'),
            # the MIM adversaries: the method is in the encoder (class of
            # the method's and of the baseline's backbone)
            'adpe_coord': ('MAEPlusViT', 'MAEPlusViT'),
            'adpe_embed': ('MAEPlusViT', 'MAEPlusViT'),
            'adpe_simmim_coord': ('SimMIMViT', 'SimMIMViT'),
            'mae_plus': ('MAEPlusViT', 'MAEViT'),
            'adios_simclr': ('ADIOS', 'SimCLR'),
            'adios_byol': ('ADIOS', 'BYOL'),
            'adios_simsiam': ('ADIOS', 'SimSiam'),
            'adios_simmim': ('SimMIMViT', 'SimMIMViT'),
            'aemim_adpe': ('MAEPlusViT', 'MAEPlusViT'),
            'aemim_adios_simmim': ('SimMIMViT', 'SimMIMViT')}
#: The pairs whose method lives in the MIM algorithm's encoder.
MIM = ('adpe_coord', 'adpe_embed', 'adpe_simmim_coord', 'mae_plus',
       'adios_simmim', 'aemim_adpe', 'aemim_adios_simmim')
#: ADIOS: a masking network, its own optimizer, N occluded views.
ADIOS = ('adios_simclr', 'adios_byol', 'adios_simsiam')
#: The committed runs (AdPE's and ADIOS's, then the learned masks' and
#: AEMIM's around them, added later in runs of their own): together every
#: method, each run's in table order.
RESULTS = tuple(REPO / 'docs' / 'results' / f'benchmark_survey_{run}.json'
                for run in ('cpu', 'adpe_adios_cpu', 'mim_aemim_cpu'))
#: The methods that attack pixels (the others perturb what the loss
#: compares against and take no attack).
PIXEL = ('rocl', 'clae', 'acl', 'advcl', 'arocl', 'aadvcl', 'byorl',
         'byorl_simsiam')


@pytest.fixture(scope='module')
def smoke_runners():
    """Every smoke variant, baseline before method."""
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    return {r.name: r
            for r in bench.build_survey_runners(bench.SURVEY_PAIRS, SMOKE)}


def test_every_method_has_its_baseline_in_table_order(smoke_runners):
    assert [p.method for p in bench.SURVEY_PAIRS] == list(EXPECTED)
    assert list(smoke_runners) == [n for p in bench.SURVEY_PAIRS
                                   for n in (p.baseline, p.method)]
    assert bench.select_survey_pairs(['byorl', 'rocl']) == [
        bench.SURVEY_PAIRS[0], bench.SURVEY_PAIRS[6]]     # table order
    with pytest.raises(ValueError, match=r"unknown survey methods \['x'\]"):
        bench.select_survey_pairs(['rocl', 'x'])


def test_variants_build_from_the_shipped_configs(smoke_runners):
    """Method and baseline: the config's model and its ``algorithm`` (same
    layers, widths / 8 in the smoke preset), the config's preprocessor,
    attack and optimizer; the batch is a list of two uint8 views."""
    from aemim_mm.models.adapters import adversarial_state_dict_keys
    for pair in bench.SURVEY_PAIRS:
        if pair.method in MIM:
            continue        # test_mim_variants_build_from_their_configs
        cfg = Config.fromfile(str(REPO / 'configs' / 'survey' /
                                  f'{pair.config}.py'))
        method = smoke_runners[pair.method].model
        base = smoke_runners[pair.baseline].model
        assert (type(method).__name__, type(base).__name__) == \
            EXPECTED[pair.method] == (cfg.model.type,
                                      cfg.model.algorithm.type)
        assert type(method.algorithm) is type(base)
        # the baseline is the method's algorithm without its adversarial
        # BatchNorm twins: the same encoder and projector, layer by layer
        own = method.state_dict()
        adversarial = set(adversarial_state_dict_keys(own))

        def encoder(state):
            return {k: v.shape for k, v in state.items() if k.startswith(
                ('backbone.', 'neck.')) and k not in adversarial}

        assert encoder(own) == encoder(base.state_dict()) != {}
        assert bool(adversarial) == (cfg.model.get('adapter') == 'bn')
        assert type(base.neck).__name__ == cfg.model.algorithm.neck.type
        first = next(v for v in base.neck.state_dict().values()
                     if v.dim() == 2)       # the projector's first layer
        assert first.shape[1] == \
            cfg.model.algorithm.neck.in_channels // SMOKE['width_divisor']
        # the model's preprocessor, or the top-level one (as the Runner)
        want = cfg.model.get('data_preprocessor') or cfg.data_preprocessor
        for model in (method, base):
            prep = model.data_preprocessor
            torch.testing.assert_close(prep.mean.flatten(),
                                       torch.tensor(want.mean))
            torch.testing.assert_close(prep.std.flatten(),
                                       torch.tensor(want.std))
            # as mmengine's Runner in one process: no SyncBatchNorm left
            assert not any(isinstance(m, torch.nn.SyncBatchNorm)
                           for m in model.modules())
        if pair.method in PIXEL:
            for key in ('eps', 'steps'):
                assert getattr(method.attack, key) == pytest.approx(
                    cfg.model.attack[key])
        else:
            assert method.attack is None and 'attack' not in cfg.model
        # a baseline takes two views, a method its pipeline's
        shape = (torch.uint8, (SMOKE['batch'], 3, SMOKE['img_size'],
                               SMOKE['img_size']))
        for name, views in ((pair.baseline, 2),
                            (pair.method, 3 if 'advcl' in pair.method
                             else 2)):
            optim = smoke_runners[name].optim
            if pair.method in ADIOS:    # the method: one per network
                want = {k: cfg.optim_wrapper[k].optimizer.type
                        for k in ('encoder', 'mask_net')}
                got = {k: type(w.optimizer).__name__
                       for k, w in optim.items()} if name == pair.method \
                    else {'encoder': type(optim.optimizer).__name__}
                assert got == {k: want[k] for k in got}, name
            else:
                assert type(optim.optimizer).__name__ == \
                    cfg.optim_wrapper.optimizer.type
            batch = smoke_runners[name].batch
            assert [(v.dtype, tuple(v.shape))
                    for v in batch['inputs']] == [shape] * views
            assert [d.sample_idx for d in batch['data_samples']] == list(
                range(SMOKE['batch']))


def test_mim_variants_build_from_their_configs(smoke_runners):
    """AdPE and MAE+: the method's config's model and the baseline
    config's (widths / 8, the preset's image size), each with its own
    optimizer; AdPE's state climbs (the negative-learning-rate group, the
    projection after each step); SimMIM's samples carry the pipeline's
    mask; the batch is one uint8 tensor."""
    for pair in bench.SURVEY_PAIRS:
        if pair.method not in MIM:
            continue
        method = smoke_runners[pair.method]
        base = smoke_runners[pair.baseline]
        # AEMIM's pairs: the wrapper against the algorithm it wraps
        algorithm = getattr(method.model, 'algorithm', method.model)
        assert (type(algorithm.backbone).__name__,
                type(base.model.backbone).__name__) == EXPECTED[pair.method]
        cfg = Config.fromfile(str(REPO / 'configs' / 'survey' /
                                  f'{pair.config}.py'))
        assert type(method.model).__name__ == cfg.model.type
        if algorithm is not method.model:
            assert type(base.model) is type(algorithm)
            assert method.model.sample_seed == 0
        assert algorithm.backbone.embed_dims == 192 // SMOKE['width_divisor']
        assert algorithm.backbone.patch_resolution == (4, 4)  # 16 px
        positions = algorithm.backbone.adversarial_positions
        assert (positions is not None) == ('adpe' in pair.method)
        if 'adios_simmim' in pair.method:
            assert algorithm.guarded        # AdversarialMaskHook's check
        if positions is not None:
            assert positions.guarded
            before = positions.delta.detach().clone()
            method.step()
            assert not torch.equal(positions.delta, before)
            assert positions.delta.detach().abs().max() <= positions.eps
        for runner in (method, base):
            batch = runner.batch
            assert batch['inputs'].dtype == torch.uint8
            assert tuple(batch['inputs'].shape) == (SMOKE['batch'], 3, 16, 16)
            # SimMIM reads its pipeline's mask; the learned one none
            simmim = type(runner.model).__name__ == 'SimMIM'
            assert all(('mask' in d) == simmim for d in batch['data_samples'])
            if simmim:       # 16 px, blocks of 8 px over 4 px patches
                assert batch['data_samples'][0].mask.shape == (4, 4)
            assert type(runner.optim.optimizer).__name__ == 'AdamW'


def test_methods_are_timed_in_their_steady_state(smoke_runners):
    """Banks past their fill (every timed iteration steps the bank), AdvCL
    with pseudo-labels for the batch's samples; each iteration moves the
    bank and keeps the fill count at the bank's size."""
    for name in ('adco', 'caco'):
        runner = smoke_runners[name]
        model = runner.model
        assert model.bank_full
        assert int(model.bank_filled) == model.bank.shape[1]
        before = model.bank.clone()
        runner.step()
        assert not torch.equal(model.bank, before), name
        assert int(model.bank_filled) == model.bank.shape[1]
    for name in ('advcl', 'aadvcl'):
        model = smoke_runners[name].model
        labels = model.pseudo_labels
        assert labels.shape == (SMOKE['batch'], len(model.ks))
        assert all(int(labels[:, i].max()) < k
                   for i, k in enumerate(model.ks))
    cfg = Config.fromfile(str(REPO / 'configs' / 'survey' /
                              'advcl_simclr_resnet18_cifar10.py'))
    assert bench.survey.config_views(cfg) == 3
    cfg.train_dataloader.dataset.pipeline = [dict(type='PackInputs')]
    with pytest.raises(ValueError, match='has a MultiView step'):
        bench.survey.config_views(cfg)
    cfg.model.type = 'MAE'
    assert bench.survey.config_views(cfg) == 0


def test_the_cpu_preset_is_the_shipped_model(smoke_runners):
    """survey_cpu shrinks nothing: 512 features into each projector."""
    pair = bench.SURVEY_PAIRS[0]
    cfg = bench.survey.survey_model_config(pair, True,
                                           bench.SURVEY_PRESETS['survey_cpu'])
    shipped = Config.fromfile(str(REPO / 'configs' / 'survey' /
                                  f'{pair.config}.py')).model
    assert cfg['neck'] == shipped.algorithm.neck.to_dict()
    assert cfg['backbone'] == shipped.algorithm.backbone.to_dict()
    assert cfg['data_preprocessor'] == shipped.data_preprocessor.to_dict()


def test_each_method_counts_more_flops_than_its_baseline(smoke_runners):
    flops = {n: bench.count_flops(r) for n, r in smoke_runners.items()}
    for pair in bench.SURVEY_PAIRS:
        method = sum(flops[pair.method].values())
        base = sum(flops[pair.baseline].values())
        assert method > 0 and base > 0, pair.method
        if pair.method in PIXEL:
            # every attack step is a forward and an input-gradient backward
            # of at least one view: at least the plain iteration's
            assert method / base > 1.9, pair.method
        elif pair.method in ADIOS:
            # N occluded views through the encoder twice (its step and the
            # masking network's), and the U-Net
            num_masks = smoke_runners[pair.method].model.num_masks
            assert method / base > num_masks, pair.method
        elif pair.method == 'mae_plus':
            # every patch through the encoder, not a quarter of them
            assert method / base > 2, pair.method
        elif pair.method == 'adios_simmim':
            # the masking network's U-Net beside the same SimMIM passes
            assert method > base, pair.method
        elif pair.method.startswith('aemim_'):
            # AEMIM's attack steps and adversarial pass (> 3x at the
            # shipped size; here the U-Net, not shrunk, weighs on the base)
            assert method / base > 1.5, pair.method
        elif pair.method in MIM:
            # AdPE: the shifted encoding and the projection are elementwise
            assert method == base, pair.method
        else:
            # the same encoder passes; the bank's logits and step, MoCHi's
            # mixtures cost little (IFM and HCL: elementwise work only)
            assert 0.99 < method / base < 1.2, pair.method
    # the per-operator counts add up to Runner.flops' total
    runner = smoke_runners['clae']
    assert sum(bench.count_flops(runner).values()) == runner.flops()
    assert set(flops['rocl']) <= bench.survey.FLOP_OPS


def test_make_batch_keeps_the_mim_batch():
    """views=0 (the MIM presets): one tensor, the pixels as before."""
    batch = bench.make_batch(3, 8, seed=1)
    gen = torch.Generator().manual_seed(1)
    torch.testing.assert_close(batch['inputs'], torch.randint(
        0, 256, (3, 3, 8, 8), generator=gen, dtype=torch.uint8))
    views = bench.make_batch(3, 8, seed=1, views=2)['inputs']
    assert isinstance(views, list) and len(views) == 2
    torch.testing.assert_close(views[0], batch['inputs'])
    assert not torch.equal(views[0], views[1])


def _rows(method_times, base_times, method_flops=500, base_flops=100,
          contention=None):
    pair = bench.SurveyPair('m', 'b', 'cfg')
    return bench.survey_rows(
        [pair], dict(batch=8), dict(m=method_times, b=base_times),
        dict(m={'aten::mm': method_flops}, b={'aten::mm': base_flops}),
        contention)


@pytest.mark.parametrize('method_time,within', [
    (5.25, True),          # exactly 5 % over the floor of 5
    (5.2501, False),
    (4.0, True),           # under the floor
])
def test_rows_ratio_floor_and_spread(method_time, within):
    rows = _rows([method_time, method_time * 1.1, method_time * 0.9],
                 [1.0, 1.0, 1.0])
    row = rows['m']
    assert list(rows) == ['b', 'm']
    assert row['ratio'] == pytest.approx(method_time)    # medians
    assert row['flop_ratio'] == pytest.approx(5.0)
    assert row['measured_over_predicted'] == pytest.approx(method_time / 5)
    assert row['within_floor'] is within
    assert row['quiet_reps'] is None and row['quiet_ratio'] is None
    assert row['rep_ratios'] == pytest.approx(
        [method_time, method_time * 1.1, method_time * 0.9])
    assert rows['b']['images_per_s'] == pytest.approx(8.0)
    assert rows['b']['gflops'] == pytest.approx(1e-7)


def test_quiet_repetitions_decide_the_verdict():
    """A repetition counts as quiet when both iterations of the pair saw
    under QUIET_CORES of other work; the verdict is on those."""
    busy, calm = 1.0, bench.QUIET_CORES / 2
    rows = _rows([5.0, 15.0, 5.5, 16.0], [1.0, 1.0, 1.0, 4.0],
                 contention=dict(m=[calm, busy, calm, calm],
                                 b=[calm, calm, calm, busy]))
    row = rows['m']
    assert row['quiet_reps'] == [0, 2]
    assert row['quiet_ratio'] == pytest.approx(5.25)    # medians of 0, 2
    assert row['ratio'] == pytest.approx(10.25)         # all repetitions
    assert row['measured_over_predicted'] == pytest.approx(1.05)
    assert row['within_floor'] is True
    assert rows['b']['contention_cores'] == [calm, calm, calm, busy]
    # none quiet: the verdict falls back on every repetition
    rows = _rows([5.0, 15.0], [1.0, 1.0],
                 contention=dict(m=[busy, busy], b=[calm, calm]))
    assert rows['m']['quiet_reps'] == [] and rows['m']['quiet_ratio'] is None
    assert rows['m']['measured_over_predicted'] == pytest.approx(2.0)


def test_wait_for_quiet(monkeypatch):
    """Waits while the rest of the machine is busy, up to the limit."""
    survey = bench.survey
    clock = [0.0]
    others = iter([0.0, 1.0, 1.0, 1.02, 1.02, 2.0])   # busy, quiet, ...
    monkeypatch.setattr(survey.time, 'sleep',
                        lambda s: clock.__setitem__(0, clock[0] + s))
    monkeypatch.setattr(survey.time, 'perf_counter', lambda: clock[0])
    monkeypatch.setattr(survey, 'others_cpu_seconds', lambda: next(others))
    assert survey.wait_for_quiet(60) == pytest.approx(2.0)
    assert survey.wait_for_quiet(0) == 0.0       # off: no sample taken
    monkeypatch.setattr(survey, 'others_cpu_seconds', lambda: clock[0])
    assert survey.wait_for_quiet(3) == pytest.approx(3.0)  # always busy


@pytest.mark.skipif(not LINUX, reason='/proc is Linux-only')
def test_others_cpu_seconds_grow():
    # two counters of different accounting: equal within a few clock ticks
    # when nothing else runs
    slack = 4 * os.cpu_count() / os.sysconf('SC_CLK_TCK')
    first = bench.survey.others_cpu_seconds()
    assert first is not None and first >= 0
    assert bench.survey.others_cpu_seconds() >= first - slack


def test_survey_table_and_excess():
    rows = _rows([5.5, 5.0, 6.0], [1.0, 1.0, 1.25])
    ops = dict(
        b=dict(iteration=1.0, attack=0.0, optimizer=0.1, flop_ops=0.6,
               other=0.4, flop_ops_by_op={'aten::mm': 0.6},
               other_by_op={'aten::add': 0.3}),
        m=dict(iteration=5.6, attack=4.0, optimizer=0.1, flop_ops=3.1,
               other=2.5, flop_ops_by_op={'aten::mm': 3.1},
               other_by_op={'aten::add': 1.65, 'aten::sign': 0.2}))
    excess = bench.excess_over_floor(rows, ops, 'm', top=2)
    assert excess['excess'] == pytest.approx(0.6)
    assert excess['flop_ops'] == pytest.approx(0.1)
    assert excess['other'] == pytest.approx(0.5)    # of the totals
    assert [n for n, _ in excess['largest']] == ['aten::sign', 'aten::add']
    assert excess['largest'][0][1] == pytest.approx(0.2)
    result = dict(preset='survey_smoke', device_name='CPU', batch=8, reps=3,
                  warmup=1, floor_tolerance=0.05, quiet_cores=0.1,
                  wait_quiet=30, waited_s=12.4, variants=rows,
                  phases=dict(iterations=1, variants=ops,
                              over_floor=dict(m=excess)))
    table = bench.format_survey_table(result)
    assert ('| m | b | 1.000 | 5.500 | 5.500 | 4.800–5.500 | - | - | 0.0 | '
            '0.0 | 5.000 | 1.100 | no |') in table
    assert 'noise: max / min of identical iterations: b 1.250, m 1.200' \
        in table
    assert "contention: other processes'" not in table     # not recorded
    assert ('waited for a quiet machine (up to 30 s before each iteration, '
            'outside the timed region): 12 s in all') in table
    assert '| m | 5.600 | 4.000 | 0.100 | 3.100 | 2.500 | 0.0 | - |' in table
    assert ('| m | 5.000 | 5.600 | 0.600 | 0.100 | 0.500 | aten::sign '
            '0.200, aten::add 0.150 |') in table
    # with contention: the quiet repetitions, their ratio, the cores
    result['variants'] = _rows([5.5, 5.0, 6.0], [1.0, 1.0, 1.25],
                               contention=dict(m=[0.0, 0.5, 0.05],
                                               b=[0.01, 0.0, 0.0]))
    table = bench.format_survey_table(dict(result, phases=None))
    assert ('| m | b | 1.000 | 5.500 | 5.500 | 4.800–5.500 | 2 of 3 | 5.111 '
            '| 0.0 | 0.0 | 5.000 | 1.022 | yes |') in table
    assert ('contention: other processes\' CPU during each timed iteration, '
            'in cores (per repetition; quiet: under 0.1): b 0.01 0.00 0.00, '
            'm 0.00 0.50 0.05') in table
    assert 'over the floor' not in table                # no profile


@pytest.mark.parametrize('args,message', [
    (['--sweep'], '--sweep is not for --suite survey'),
    (['--pairwise'], '--pairwise is not for --suite survey'),
    (['--processes', '2'], '--processes is not for --suite survey'),
    (['--preset', 'cpu'], '--preset cpu is not a preset of --suite survey'),
    (['--wait-quiet', '-1'], '--wait-quiet must be >= 0'),
])
def test_survey_rejects_other_suites_options(args, message, capsys):
    tool = load_tool('benchmark')
    with pytest.raises(SystemExit):
        tool.parse_args(['--suite', 'survey', *args])
    assert message in capsys.readouterr().err


def test_default_suite_and_presets_are_unchanged():
    tool = load_tool('benchmark')
    assert (tool.parse_args([]).suite, tool.parse_args([]).preset) == (
        'aemim', 'cpu')
    assert tool.parse_args(['--suite', 'survey']).preset == 'survey_cpu'
    with pytest.raises(SystemExit):
        tool.parse_args(['--preset', 'survey_smoke'])    # not a MIM preset
    with pytest.raises(SystemExit):
        tool.parse_args(['--wait-quiet', '10'])          # survey only


def test_survey_cli_in_process(tmp_path: Path):
    """main() on two methods: the JSON holds the command, the machine,
    each pair, the rows, the profile and the table."""
    tool = load_tool('benchmark')
    out = tmp_path / 'out' / 'survey.json'
    argv = ['--suite', 'survey', '--preset', 'survey_smoke', '--warmup',
            '0', '--reps', '2', '--variants', 'clae', 'byorl', '--phases',
            '1', '--out', str(out), '--tmp-dir', str(tmp_path / 'tmp')]
    with pytest.raises(SystemExit, match="unknown survey methods"):
        tool.main(argv[:8] + ['--variants', 'nope', '--out', str(out)])
    returned = tool.main(argv)
    result = json.loads(out.read_text())
    assert result == json.loads(json.dumps(returned))
    assert result['command'] == 'python tools/benchmark.py ' + ' '.join(argv)
    for key in ('device_name', 'torch', 'threads', 'glibc_tunables',
                'timed', 'seconds'):
        assert key in result, key
    assert (result['suite'], result['preset'], result['batch'],
            result['floor_tolerance']) == ('survey', 'survey_smoke', 4, 0.05)
    assert [p['method'] for p in result['pairs']] == ['clae', 'byorl']
    rows = result['variants']
    assert list(rows) == ['simclr_clae', 'clae', 'byol', 'byorl']
    if LINUX:   # the contention of each timed iteration
        for row in rows.values():
            assert len(row['contention_cores']) == 2
            assert all(c >= 0 for c in row['contention_cores'])
    assert (result['quiet_cores'], result['wait_quiet']) == (0.1, 0.0)
    for name in ('clae', 'byorl'):
        row = rows[name]
        assert len(row['times_s']) == len(row['rep_ratios']) == 2
        assert row['flop_ratio'] > 1 and row['ratio'] > 0
        assert isinstance(row['within_floor'], bool)
    phases = result['phases']
    assert list(phases['variants']) == list(rows)
    assert phases['variants']['byol']['attack'] == 0
    assert phases['variants']['byorl']['attack'] > 0
    assert set(phases['over_floor']) == {'clae', 'byorl'}
    assert result['table'] == bench.format_survey_table(result)
    assert not list((tmp_path / 'out').glob('*.tmp'))


@pytest.mark.slow
def test_survey_cli_runs_every_method(tmp_path: Path):
    out = tmp_path / 'survey.json'
    env = dict(os.environ, OMP_NUM_THREADS='1', OMP_WAIT_POLICY='PASSIVE')
    env.pop('GLIBC_TUNABLES', None)     # the script chooses its own
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'benchmark.py'), '--suite',
         'survey', '--preset', 'survey_smoke', '--warmup', '1', '--reps',
         '2', '--out', str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'repetition 2/2 done, eta' in proc.stdout   # progress and ETA
    assert 'init_weights' not in proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert [p['method'] for p in result['pairs']] == list(EXPECTED)
    for pair in result['pairs']:
        assert f'| {pair["method"]} | {pair["baseline"]} |' in proc.stdout
    assert 'phases' not in result
    if LINUX:   # timed with the caching malloc settings (re-exec)
        assert result['glibc_tunables'] == \
            load_tool('benchmark').TIMING_TUNABLES


# ---------------------------------------------------------------------- #
# docs/survey_cost.md against the committed result


@pytest.fixture(scope='module', params=RESULTS, ids=lambda p: p.stem)
def committed(request):
    return json.loads(request.param.read_text()) | dict(
        path=str(request.param.relative_to(REPO)))


@pytest.mark.docs
def test_committed_runs_cover_every_method_once():
    methods = [p['method'] for path in RESULTS
               for p in json.loads(path.read_text())['pairs']]
    assert sorted(methods) == sorted(EXPECTED)


@pytest.mark.docs
def test_committed_result_is_the_cpu_preset_run(committed):
    assert committed['preset'] == 'survey_cpu'
    assert committed['batch'] == bench.SURVEY_PRESETS['survey_cpu']['batch']
    assert committed['reps'] >= 5
    methods = [p['method'] for p in committed['pairs']]
    assert methods == [m for m in EXPECTED if m in methods]   # table order
    # the first run timed every method there was (the MIM adversaries' and
    # ADIOS's pairs came after it); a later one names its methods
    selected = ' --variants ' + ' '.join(methods)
    if '--variants' not in committed['command']:
        assert methods == [m for m in EXPECTED if m not in MIM + ADIOS]
        selected = ''
    assert committed['command'] == (
        'python tools/benchmark.py --suite survey --preset survey_cpu'
        f'{selected} --warmup {committed["warmup"]} --reps '
        f'{committed["reps"]} --phases '
        f'{committed["phases"]["iterations"]} --wait-quiet '
        f'{committed["wait_quiet"]:g} --out {committed["path"]}')
    # the committed table is what the code prints for the committed numbers
    assert committed['table'] == bench.format_survey_table(committed)


@pytest.mark.docs
def test_doc_tables_come_from_the_committed_result(committed):
    """Every table row, the noise line and the profile's rows of
    docs/survey_cost.md are what format_survey_table prints for the
    committed JSON, whose command is quoted."""
    doc = DOC.read_text()
    assert committed['command'].split(' ', 1)[1] in doc
    lines = [ln for ln in bench.format_survey_table(committed).splitlines()
             if ln.startswith(('| ', 'noise: ', 'preset '))]
    assert len(lines) > 2 * len(committed['pairs'])
    for line in lines:
        assert line in doc, f'docs/survey_cost.md lacks: {line}'


@pytest.mark.docs
def test_doc_verdicts_come_from_the_committed_result(committed):
    """One verdict line per method: its time ratio, its floor, how far over
    the floor, and within or not, as the committed JSON says."""
    doc = ' '.join(DOC.read_text().split())
    tolerance = 100 * committed['floor_tolerance']
    for pair in committed['pairs']:
        row = committed['variants'][pair['method']]
        over = 100 * (row['measured_over_predicted'] - 1)
        verdict = (f'within {tolerance:.0f} %' if row['within_floor'] else
                   f'NOT within {tolerance:.0f} %')
        basis = (f'{len(row["quiet_reps"])} quiet repetitions'
                 if row['quiet_ratio'] else 'all repetitions')
        measured = row['quiet_ratio'] or row['ratio']
        line = (f'**{pair["method"]}**: {measured:.3f}× its baseline '
                f'({basis}) against a floor of {row["flop_ratio"]:.3f}× '
                f'({over:+.1f} %), {verdict}')
        assert line in doc, f'docs/survey_cost.md lacks: {line}'
