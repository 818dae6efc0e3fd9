"""Every algorithm AdversarialMIMWrapper supports, through one list
(:data:`tiny_algorithms.CASES`), and the dispatch that refuses the others."""
import contextlib
from typing import Dict, Iterator, List, Optional

import pytest
import torch
from torch.testing import assert_close

import aemim_mm.models.randomness as randomness
from aemim_mm.models import (AdversarialMIMWrapper, convert_adapters,
                             supported_algorithms)
from aemim_mm.models.adapters import clean_twin_key, is_adversarial_key
from aemim_mm.models.algorithms import (MAEInterface, build_mim_interface,
                                        register_mim_interface)
from aemim_mm.models.algorithms import base as algorithms_base
from mmpretrain.models.selfsup import MAE
from mmpretrain.registry import MODELS
from tiny_algorithms import CASES, case_cfg, itpn_cfg
from tiny_models import (MAE_VIT, build_wrapper, mae_cfg, simmim_cfg,
                         valid_images)

SUPPORTED = (r"\['AdversarialMaskSimMIM', 'BEiT', 'CAE', 'EVA', 'MAE', 'MFF', "
             r"'MILAN', 'MaskFeat', 'MixMIM', 'SimMIM', 'SparK', 'iTPN'\]\. ")
ATTACK_OFF = dict(type='FeatureDistancePGD', eps=0, steps=2)
ATTACK = dict(type='FeatureDistancePGD', eps=2, steps=2)
CASE = pytest.mark.parametrize('case', CASES, ids=repr)


@pytest.fixture(scope='module')
def clip_dir(tmp_path_factory) -> str:
    """Where the tiny random CLIP checkpoint of EVA / MILAN is written."""
    return str(tmp_path_factory.mktemp('clip'))


def _wrapper(case, clip_dir: str, **kwargs) -> AdversarialMIMWrapper:
    return build_wrapper(case_cfg(case, clip_dir), **kwargs)


def _plain(case, clip_dir: str):
    plain = MODELS.build(case_cfg(case, clip_dir))
    plain.init_weights()
    return plain


def _record(monkeypatch, mim, name: str, calls: List) -> None:
    """Record the arguments of every call of ``mim.<name>``."""
    original = getattr(mim, name)

    def spy(*args):
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(mim, name, spy)


@contextlib.contextmanager
def _plain_draws(noise: Optional[torch.Tensor]) -> Iterator[None]:
    """Make the plain algorithm's own mask draw return the wrapper's mask.

    MAE-style backbones draw ``torch.rand(B, L)``; MILAN draws
    ``torch.multinomial(importance, L)``, whose draw is the ascending order
    of the wrapper's noise; MixMIM draws ``torch.rand(1, 1, L)`` for the
    batch (the wrapper's (B, L + 1) rows are equal; the last column is the
    mask-ratio draw, unused with ``range_mask_ratio=0``).
    """
    if noise is None:       # the mask comes with the data
        yield
        return
    rand, multinomial = torch.rand, torch.multinomial

    def fixed_rand(*size, **kwargs):
        if tuple(size) == (1, 1, noise.shape[1] - 1):       # MixMIM
            return noise[:1, :-1].reshape(size).to(kwargs.get('device'))
        assert tuple(size) == tuple(noise.shape), size
        return noise.clone().to(kwargs.get('device'))

    def fixed_multinomial(weights, num, replacement=False):
        assert weights.shape == noise.shape and not replacement
        return torch.argsort(noise, dim=1)

    torch.rand, torch.multinomial = fixed_rand, fixed_multinomial
    try:
        yield
    finally:
        torch.rand, torch.multinomial = rand, multinomial


def _to_float64(model: torch.nn.Module) -> None:
    """``model.double()``, except the tokenizers' modules that compute in
    float32 by design (they cast their input): CLIP's LayerNorms, DALL-E."""
    from mmpretrain.models.selfsup import DALLEEncoder
    from mmpretrain.models.utils.clip_generator_helper import LayerNorm
    model.double()
    for module in model.modules():
        if type(module) in (LayerNorm, DALLEEncoder):
            module.float()


def _double(inputs):
    if isinstance(inputs, list):
        return [x.double() for x in inputs]
    return inputs.double()


def _tensors(obj) -> List[torch.Tensor]:
    return list(obj) if isinstance(obj, (tuple, list)) else [obj]


def _grads(model: torch.nn.Module, loss: torch.Tensor) -> Dict:
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return {n: p.grad.clone() for n, p in model.named_parameters()
            if p.grad is not None}


# --------------------------------------------------------------------- #
@CASE
def test_builds_with_adapters_and_the_right_interface(case, clip_dir):
    wrapper = _wrapper(case, clip_dir, attack=ATTACK)
    registered = algorithms_base._INTERFACES[type(wrapper.algorithm)]
    assert type(wrapper.mim) is type(
        registered.for_algorithm(wrapper.algorithm))
    adv = [n for n, _ in wrapper.named_parameters() if is_adversarial_key(n)]
    assert adv
    # every LayerNorm of the encoder and the decoder has an adversarial twin
    for scope in wrapper.mim.adapter_scope(('backbone', 'neck')):
        for name, module in getattr(wrapper.algorithm,
                                    scope).named_modules():
            if isinstance(module, torch.nn.LayerNorm):
                assert hasattr(module, 'adv_weight'), f'{scope}.{name}'


@CASE
def test_two_iterations_through_the_runner(case, clip_dir, tmp_path):
    from mmengine.runner import Runner
    from mmpretrain.structures import DataSample

    class Images(torch.utils.data.Dataset):

        def __len__(self):
            return 4

        def __getitem__(self, i):
            sample = DataSample()
            masks = case.samples(1)
            if masks is not None:
                sample.set_mask(masks[0].mask)
            return dict(inputs=case.raw_inputs(i), data_samples=sample)

    runner = Runner(
        model=dict(type='AdversarialMIMWrapper',
                   algorithm=case_cfg(case, clip_dir), attack=ATTACK),
        work_dir=str(tmp_path),
        train_dataloader=dict(dataset=Images(), batch_size=2,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        train_cfg=dict(by_epoch=False, max_iters=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=2)),
        default_scope='mmpretrain')
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.train()
    assert runner.iter == 2
    after = runner.model.state_dict()
    assert any(not torch.equal(after[k], before[k]) for k in before)
    scalars = runner.message_hub.log_scalars
    for key in ('loss', 'rec_clean', 'rec_adv', 'adv_dist'):
        assert torch.isfinite(torch.tensor(
            scalars[f'train/{key}'].current())), key


@CASE
def test_attack_off_equals_the_plain_algorithm_float64(case, clip_dir,
                                                       monkeypatch):
    """eps 0, loss_ratio 1: loss and every gradient are the unwrapped
    algorithm's with the same mask (exact in float64; in float32 where the
    upstream code computes in float32 only: MaskFeat's HOG)."""
    wrapper = _wrapper(case, clip_dir, attack=ATTACK_OFF, loss_ratio=1.0)
    plain = _plain(case, clip_dir)
    state = {k: v for k, v in wrapper.state_dict().items()
             if not is_adversarial_key(k)}
    plain.load_state_dict(state, strict=True)
    inputs = case.inputs(2, seed=3)
    if case.float64:
        _to_float64(wrapper)
        _to_float64(plain)
        inputs = _double(inputs)
    prepared = []
    original = wrapper.mim.prepare

    def spy(*args):
        prepared.append(original(*args))
        return prepared[-1]

    monkeypatch.setattr(wrapper.mim, 'prepare', spy)
    out = wrapper.loss(inputs, case.samples(2))
    total, _ = wrapper.parse_losses(out)
    noise = (None if case.samples(1) is not None  # the data's mask
             else prepared[0][1])
    with _plain_draws(noise):
        expected, _ = plain.parse_losses(plain.loss(inputs, case.samples(2)))
    assert_close(out['loss_clean'], expected)
    assert_close(total, expected)
    assert_close(out['rec_adv'], out['rec_clean'])   # x_adv = x
    got = _grads(wrapper, total)
    want = _grads(plain, expected)
    assert want
    assert {f'algorithm.{n}' for n in want} <= set(got)
    for name, grad in got.items():
        if is_adversarial_key(name):            # weighted by 1 - 1 = 0
            assert not grad.any(), name
        else:
            plain_name = name[len('algorithm.'):]
            assert_close(grad, want.get(plain_name, torch.zeros_like(grad)),
                         msg=name)


@CASE
def test_one_mask_for_clean_pass_attack_and_adversarial_pass(
        case, clip_dir, monkeypatch):
    wrapper = _wrapper(case, clip_dir, attack=ATTACK)
    passes, steps = [], []
    _record(monkeypatch, wrapper.mim, 'reconstruction_loss', passes)
    _record(monkeypatch, wrapper.mim, 'encode', steps)
    inputs = case.inputs(3)
    x = case.view(inputs)
    wrapper.loss(inputs, case.samples(3))
    assert len(passes) == 2 and len(steps) >= ATTACK['steps']
    mask = passes[0][1]
    for args in passes[1:] + steps:
        assert_close(args[1], mask)
    # the tokens are a function of (image, mask): no draw of their own
    torch.manual_seed(0)
    first = wrapper.mim.encode(x, mask)
    torch.manual_seed(1)
    assert_close(wrapper.mim.encode(x, mask), first)


@CASE
def test_adapter_gradients_come_from_their_own_pass(case, clip_dir):
    wrapper = _wrapper(case, clip_dir, attack=ATTACK)
    out = wrapper.loss(case.inputs(2), case.samples(2))
    from_clean = _grads(wrapper, out['loss_clean'])
    from_adv = _grads(wrapper, out['loss_adv'])
    adv = [n for n, _ in wrapper.named_parameters() if is_adversarial_key(n)]
    used_adv = {n for n in adv if n in from_adv and from_adv[n].any()}
    used_clean = {n for n in adv
                  if clean_twin_key(n) in from_clean
                  and from_clean[clean_twin_key(n)].any()}
    assert used_adv and used_adv == used_clean
    for name in adv:
        assert name not in from_clean or not from_clean[name].any(), name
        twin = clean_twin_key(name)
        assert twin not in from_adv or not from_adv[twin].any(), twin


@CASE
def test_cls_token_adapter_or_a_clear_refusal(case, clip_dir):
    """adapter='cls_token' where the backbone has a class token (separated
    gradients); a ValueError at build time where it has none."""
    cfg = case_cfg(case, clip_dir)
    if 'cls_token' not in dict(MODELS.build(cfg).backbone.named_parameters()):
        with pytest.raises(ValueError, match="found no a `cls_token`"):
            _wrapper(case, clip_dir, adapter='cls_token')
        return
    wrapper = _wrapper(case, clip_dir, adapter='cls_token', attack=ATTACK)
    out = wrapper.loss(case.inputs(2), case.samples(2))
    from_clean = _grads(wrapper, out['loss_clean'])
    from_adv = _grads(wrapper, out['loss_adv'])
    name = 'algorithm.backbone.adv_cls_token'
    assert from_adv[name].any() and not from_adv.get(
        'algorithm.backbone.cls_token', torch.zeros(1)).any()
    assert from_clean['algorithm.backbone.cls_token'].any()
    assert name not in from_clean or not from_clean[name].any()


@CASE
def test_target_is_the_clean_images_for_both_passes(case, clip_dir,
                                                    monkeypatch):
    """Perturbing only the adversarial input leaves the target unchanged."""
    wrapper = _wrapper(case, clip_dir,
                       attack=dict(type='FeatureDistancePGD', eps=64,
                                   steps=1))
    passes = []
    _record(monkeypatch, wrapper.mim, 'reconstruction_loss', passes)
    inputs = case.inputs(2)
    out = wrapper.loss(inputs, case.samples(2))
    assert out['adv_linf'] > 32                    # the input did change
    (x_clean, _, target_clean), (x_adv, _, target_adv) = passes
    assert torch.equal(x_clean, case.view(inputs))
    assert not torch.equal(x_adv, x_clean)
    expected, _ = wrapper.mim.prepare(
        inputs, case.samples(2),
        randomness.SampleRandomness(2, torch.device('cpu')),
        update_state=False)
    for got in (target_clean, target_adv):
        assert not any(t.requires_grad for t in _tensors(got))
        assert_close(got, expected)


@CASE
def test_visualize_gives_the_four_images(case, clip_dir):
    """What FeatureDistancePGDHook draws: RGB in [0, 1], the model view's
    size; the adversarial image within eps of the clean one."""
    wrapper = _wrapper(case, clip_dir, attack=ATTACK)
    images = wrapper.visualize(case.inputs(2), case.samples(2))
    assert set(images) == {'clean', 'adversarial', 'perturbation',
                           'reconstruction'}
    for image in images.values():
        assert image.shape == (2, 3, case.img, case.img)
        assert 0 <= image.min() and image.max() <= 1
    assert (images['adversarial'] - images['clean']).abs().max() <= (
        2 / 255 + 1e-5)


@CASE
def test_state_dict_without_adv_keys_loads_strictly_into_the_plain_one(
        case, clip_dir):
    wrapper = _wrapper(case, clip_dir)
    state = wrapper.state_dict()
    clean = {k: v for k, v in state.items() if not is_adversarial_key(k)}
    plain = MODELS.build(case_cfg(case, clip_dir))
    assert list(clean) == list(plain.state_dict())
    plain.load_state_dict(clean, strict=True)
    other = _wrapper(case, clip_dir)
    other.load_state_dict(clean, strict=True)      # adv_* from clean twins
    for key, value in other.state_dict().items():
        twin = clean_twin_key(key) if is_adversarial_key(key) else key
        assert_close(value, clean[twin], msg=key)


@pytest.mark.parametrize(
    'case', [c for c in CASES if c.samples(1) is None and c.mask_per_sample],
    ids=repr)
def test_sample_seed_masks_do_not_depend_on_the_split(case, clip_dir,
                                                      monkeypatch):
    """Keyed masks: batch 4 on one process == batch 2 on each of two."""
    wrapper = _wrapper(case, clip_dir)
    wrapper.sample_seed = 5
    x = valid_images(4, size=case.img)
    monkeypatch.setattr(randomness, 'get_dist_info', lambda: (0, 1))
    whole = wrapper.clean_step(x, None).mask
    for rank in range(2):
        monkeypatch.setattr(randomness, 'get_dist_info',
                            lambda rank=rank: (rank, 2))
        assert_close(wrapper.clean_step(x[rank::2], None).mask,
                     whole[rank::2])


def test_cae_teacher_moves_once_per_iteration():
    """One momentum update per iteration (not one per pass), equal to the
    plain CAE's."""
    from tiny_algorithms import cae_cfg, fixed_count_samples
    wrapper = build_wrapper(cae_cfg(base_momentum=0.5), attack=ATTACK)
    plain = MODELS.build(cae_cfg(base_momentum=0.5))
    plain.load_state_dict({k: v for k, v in wrapper.state_dict().items()
                           if not is_adversarial_key(k)})
    with torch.no_grad():       # a student that differs from its teacher
        for p in wrapper.algorithm.backbone.parameters():
            p.add_(0.1)
        for p in plain.backbone.parameters():
            p.add_(0.1)
    inputs = [valid_images(2), valid_images(2, seed=1)]
    wrapper.loss(inputs, fixed_count_samples(2))
    plain.loss(inputs, fixed_count_samples(2))
    teacher = dict(wrapper.algorithm.teacher.named_parameters())
    for name, value in plain.teacher.named_parameters():
        assert_close(teacher[name], value, msg=name)
    wrapper.visualize(inputs, fixed_count_samples(2))   # no update
    for name, value in plain.teacher.named_parameters():
        assert_close(teacher[name], value, msg=name)


def test_two_view_algorithms_refuse_one_view():
    from tiny_algorithms import beit_v1_cfg, fixed_count_samples
    wrapper = build_wrapper(beit_v1_cfg())
    with pytest.raises(ValueError, match=r'BEiT takes two views, inputs = '
                       r'\[model view, tokenizer view\]'):
        wrapper.loss(valid_images(2), fixed_count_samples(2))


@pytest.mark.parametrize('batch,ratio,expected', [
    (4, 1.0, [0, 1, 2, 3]), (4, 0.5, 2), (5, 1.0, [0, 1, 2, 3, 4]),
    (5, 0.5, None), (6, 0.25, 2), (2, 0.25, 0), (1, 1.0, [0])])
def test_mixmim_attacks_whole_pairs_in_mirrored_order(batch, ratio,
                                                      expected):
    """The subset's flip(0) pairs the same images as the batch's."""
    from tiny_algorithms import mixmim_cfg
    wrapper = build_wrapper(mixmim_cfg(), adv_ratio=ratio)
    for seed in (None, 3):
        wrapper.sample_seed = seed
        idx = wrapper.select_adversarial(batch, torch.device('cpu'))
        assert_close(idx.flip(0), batch - 1 - idx)
        assert idx.unique().numel() == idx.numel()
        if isinstance(expected, list):
            assert idx.tolist() == expected
        elif expected is not None:
            assert idx.numel() == expected
        else:       # 3 pairs, 2 of them: 4 images, or 3 with the middle one
            assert idx.numel() in (3, 4)


def test_mixmim_perturbs_each_source_image_within_eps(monkeypatch):
    """The eps-ball is per source image; the backbone mixes the perturbed
    sources with the clean pass's mask and pairs."""
    from tiny_algorithms import mixmim_cfg
    wrapper = build_wrapper(mixmim_cfg(), attack=ATTACK, adv_ratio=0.5)
    passes = []
    _record(monkeypatch, wrapper.mim, 'reconstruction_loss', passes)
    x = valid_images(4, size=64)
    out = wrapper.loss(x, None)
    (_, mask, _), (x_adv, mask_adv, target) = passes
    assert x_adv.shape[0] == 2                  # one pair of two images
    assert torch.equal(mask_adv, mask[:2])      # the batch's one mask
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    chosen = [i for i in range(4)
              if any(torch.equal(target[j], x[i]) for j in range(2))]
    assert sorted(chosen) in ([0, 3], [1, 2])   # a pair
    delta = (x_adv - target) * std
    assert delta.abs().amax() <= 2 + 1e-3
    assert_close(out['adv_linf'], torch.tensor(2.0), atol=1e-3, rtol=0)


def test_milan_mask_draws_patches_in_proportion_to_importance():
    """E / importance sorted ascending: the first kept patch is patch i with
    probability importance_i / sum (as torch.multinomial)."""
    from aemim_mm.models.algorithms import MILANInterface
    importance = torch.tensor([[1., 2., 3., 4.]]).repeat(20000, 1)
    rng = randomness.SampleRandomness(20000, torch.device('cpu'))
    torch.manual_seed(0)
    noise = MILANInterface._importance_noise(importance, rng)
    first = torch.argsort(noise, dim=1)[:, 0]
    freq = torch.bincount(first, minlength=4).float() / 20000
    assert_close(freq, torch.tensor([.1, .2, .3, .4]), atol=0.015, rtol=0)


# --------------------------------------------------------------------- #
class SubclassedMAE(MAE):
    """A user's MAE variant with its own loss."""

    def loss(self, inputs, data_samples, **kwargs):
        return super().loss(inputs, data_samples, **kwargs)


def _subclassed_mae() -> SubclassedMAE:
    cfg = mae_cfg()
    cfg.pop('type')
    return SubclassedMAE(**cfg)


def test_subclass_of_a_supported_algorithm_is_refused():
    with pytest.raises(
            TypeError,
            match=r"does not know the algorithm SubclassedMAE; supported: "
            + SUPPORTED + r"It subclasses MAE.*"
            r"subclass aemim_mm.models.MIMInterface"):
        AdversarialMIMWrapper(algorithm=_subclassed_mae())


def test_algorithm_without_interface_is_refused():
    with pytest.raises(
            TypeError,
            match=r"does not know the algorithm Linear; supported: "
            + SUPPORTED + r"To add an algorithm"):
        build_mim_interface(torch.nn.Linear(2, 2))


def test_explicit_registration_serves_the_subclass(monkeypatch):
    monkeypatch.setattr(algorithms_base, '_INTERFACES',
                        dict(algorithms_base._INTERFACES))
    register_mim_interface(SubclassedMAE)(MAEInterface)
    assert 'SubclassedMAE' in supported_algorithms()
    wrapper = AdversarialMIMWrapper(algorithm=_subclassed_mae())
    wrapper.init_weights()
    out = wrapper.loss(valid_images(2), None)
    assert torch.isfinite(out['loss_clean'] + out['loss_adv'])


@pytest.mark.parametrize('algorithm,match', [
    (mae_cfg(dict(MAE_VIT, type='MFFViT')),
     r"supports MAE with the backbone \['MAEHiViT', 'MAEPlusViT', 'MAEViT', 'TimmMAEViT'\]"
     r" \(exact type\), got MFFViT"),
    (dict(mae_cfg(), type='MFF'),
     r"supports MFF with the backbone MFFViT \(exact type\), got MAEViT"),
    (dict(itpn_cfg(), backbone=dict(mae_cfg()['backbone'])),
     r"supports iTPN with the backbone iTPNHiViT \(exact type\), got "
     r"MAEViT"),
    (dict(simmim_cfg(), backbone=dict(mae_cfg()['backbone'])),
     r"supports SimMIM with the backbone \['SimMIMSwinTransformer', "
     r"'SimMIMViT'\] \(exact type\), got MAEViT"),
])
def test_unsupported_backbone_or_variant_is_refused(algorithm, match):
    with pytest.raises(TypeError, match=match):
        MODELS.build(dict(type='AdversarialMIMWrapper', algorithm=algorithm))


def test_feature_target_needs_a_target_generator():
    cfg = mae_cfg()
    cfg['type'] = 'EVA'
    with pytest.raises(ValueError, match=r'EVA needs a `target_generator`'):
        MODELS.build(dict(type='AdversarialMIMWrapper', algorithm=cfg))


def test_layer_norm_subclass_with_its_own_forward_is_refused():
    from mmpretrain.models.utils.norm import LayerNorm2d
    model = torch.nn.Module()
    model.backbone = torch.nn.Sequential(torch.nn.LayerNorm(4),
                                         LayerNorm2d(4))
    with pytest.raises(ValueError,
                       match=r"backbone\.1 is a LayerNorm2d with its own "
                       r"forward"):
        convert_adapters(model, 'ln', ('backbone', ))
