"""configs/algorithms/*.py: each inherits mmpretrain's config, wraps it with
the paper's standard AEMIM settings, and builds and runs its model with
small overrides: tiny widths and depths, and tiny random tokenizers written
to local checkpoints in place of the downloaded ones, loaded through the
config's own loading code (``CLIPGenerator``'s ``tokenizer_path``, the
``Pretrained`` ``init_cfg`` of DALL-E and VQKD)."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from torch.testing import assert_close

from mmpretrain.registry import MODELS
from tiny_algorithms import tiny_clip_checkpoint

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs' / 'algorithms'
STANDARD_CONFIGS = sorted(CONFIG_DIR.glob('aemim_*.py'))
FAST_CONFIGS = sorted(CONFIG_DIR.glob('fast_aemim_*.py'))
CONFIGS = STANDARD_CONFIGS + FAST_CONFIGS
#: the paper's Table 1
STANDARD = dict(eps=2, steps=2, distance='l2', adapter='ln', loss_ratio=0.5,
                adv_ratio=1.0)
FAST = dict(STANDARD, steps=1, adv_ratio=0.25)

VIT = dict(arch=dict(embed_dims=64, num_layers=2, num_heads=2,
                     feedforward_channels=128))
HIVIT = dict(arch=dict(embed_dims=64, depths=[1, 1, 2], num_heads=2))
DECODER = dict(embed_dim=64, decoder_embed_dim=32, decoder_depth=1,
               decoder_num_heads=2)
BEIT_VIT = dict(VIT, drop_path_rate=0.0)
DALLE = dict(n_hid=8, n_blk_per_group=1)
#: config stem -> (algorithm type, upstream config, backbone / neck / head /
#: target generator overrides, tokenizer view size or None)
EXPECTED = {
    'aemim_maskfeat_vit-base-p16_8xb256-amp-coslr-300e_in1k':
    ('MaskFeat',
     'maskfeat/maskfeat_vit-base-p16_8xb256-amp-coslr-300e_in1k.py', VIT,
     dict(in_channels=64), {}, {}, None),
    'aemim_beit_beit-base-p16_8xb256-amp-coslr-300e_in1k':
    ('BEiT', 'beit/beit_beit-base-p16_8xb256-amp-coslr-300e_in1k.py',
     BEIT_VIT, None, dict(embed_dims=64), DALLE, 112),
    'aemim_beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k':
    ('BEiT', 'beitv2/beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k.py',
     dict(VIT, out_indices=[-2, -1]),
     dict(num_layers=1, early_layers=1,
          backbone_arch=dict(VIT['arch'], depth=2)),
     dict(embed_dims=64), dict(encoder_config=VIT), 224),
    'aemim_cae_beit-base-p16_8xb256-amp-coslr-300e_in1k':
    ('CAE', 'cae/cae_beit-base-p16_8xb256-amp-coslr-300e_in1k.py', VIT,
     dict(embed_dims=64, num_heads=2, regressor_depth=1, decoder_depth=1),
     {}, DALLE, 112),
    'aemim_mae_hivit-base-p16_8xb512-amp-coslr-400e_in1k':
    ('MAE', 'mae/mae_hivit-base-p16_8xb512-amp-coslr-400e_in1k.py',
     HIVIT, DECODER, {}, {}, None),
    'aemim_itpn-clip-b_hivit-base-p16_8xb256-amp-coslr-300e_in1k':
    ('iTPN', 'itpn/itpn-clip-b_hivit-base-p16_8xb256-amp-coslr-300e_in1k.py',
     HIVIT, dict(embed_dim=64, decoder_embed_dim=64, fpn_dim=16,
                 fpn_depth=1),
     dict(embed_dims=64), {}, 224),
    'aemim_mixmim_mixmim-base_16xb128-coslr-300e_in1k':
    ('MixMIM', 'mixmim/mixmim_mixmim-base_16xb128-coslr-300e_in1k.py',
     dict(arch=dict(embed_dims=16, depths=[1, 1, 1, 1],
                    num_heads=[1, 2, 2, 4])),
     dict(embed_dim=128, decoder_embed_dim=32, decoder_depth=1,
          decoder_num_heads=2), {}, {}, None),
    'aemim_mff_vit-base-p16_8xb512-amp-coslr-300e_in1k':
    ('MFF', 'mff/mff_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
     dict(VIT, out_indices=[0, 1]), DECODER, {}, {}, None),
    'aemim_eva-mae-style_vit-base-p16_16xb256-coslr-400e_in1k':
    ('EVA', 'eva/eva-mae-style_vit-base-p16_16xb256-coslr-400e_in1k.py',
     VIT, DECODER, {}, {}, None),
    'aemim_milan_vit-base-p16_16xb256-amp-coslr-400e_in1k':
    ('MILAN', 'milan/milan_vit-base-p16_16xb256-amp-coslr-400e_in1k.py',
     VIT, DECODER, {}, {}, None),
    'aemim_itpn-pixel_hivit-base-p16_8xb512-amp-coslr-400e_in1k':
    ('iTPN', 'itpn/itpn-pixel_hivit-base-p16_8xb512-amp-coslr-400e_in1k.py',
     HIVIT, dict(DECODER, fpn_dim=16, fpn_depth=1), {}, {}, None),
    'aemim_spark_sparse-resnet50_8xb512-amp-coslr-800e_in1k':
    ('SparK', 'spark/spark_sparse-resnet50_8xb512-amp-coslr-800e_in1k.py',
     dict(depth=18, base_channels=8, stem_channels=8), dict(feature_dim=32),
     {}, {}, None),
    'aemim_spark_sparse-convnext-small_16xb256-amp-coslr-800e_in1k':
    ('SparK',
     'spark/spark_sparse-convnext-small_16xb256-amp-coslr-800e_in1k.py',
     dict(arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64])),
     dict(feature_dim=32), {}, {}, None),
}
#: config stem -> its adapter where it is not the paper's 'ln': the
#: ConvNets' split BatchNorms ('bn'; 'norm': BatchNorms and LayerNorms)
ADAPTER = {
    'aemim_spark_sparse-resnet50_8xb512-amp-coslr-800e_in1k': 'bn',
    'aemim_spark_sparse-convnext-small_16xb256-amp-coslr-800e_in1k': 'norm',
}
#: config stem -> changes to the algorithm itself beside backbone / neck /
#: head: SparK's enc_dec_norm_dim is the encoder's last width
ALGORITHM_CHANGES = {
    'aemim_spark_sparse-resnet50_8xb512-amp-coslr-800e_in1k':
    dict(enc_dec_norm_dim=64),
    'aemim_spark_sparse-convnext-small_16xb256-amp-coslr-800e_in1k':
    dict(enc_dec_norm_dim=64),
}


def _masked_samples(batch: int):
    """Samples with BEiTMaskGenerator's masks (14 x 14, 75 masked)."""
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(batch):
        mask = torch.zeros(196)
        mask[torch.randperm(196, generator=gen)[:75]] = 1
        sample = DataSample()
        sample.set_mask(mask.reshape(14, 14))
        samples.append(sample)
    return samples


def _row(path: Path) -> tuple:
    """The config's EXPECTED row and its AEMIM settings (standard / fast)."""
    stem = path.stem[len('fast_'):] if path.stem.startswith('fast_') \
        else path.stem
    settings = FAST if path.stem.startswith('fast_') else STANDARD
    return EXPECTED[stem], dict(settings, adapter=ADAPTER.get(stem, 'ln'))


def test_every_config_has_a_row():
    assert sorted(p.stem for p in STANDARD_CONFIGS) == sorted(EXPECTED)
    for path in FAST_CONFIGS:       # a Fast AEMIM variant of one of them
        standard = path.stem[len('fast_'):]
        assert standard in EXPECTED
        assert f"_base_ = ['./{standard}.py']" in path.read_text()


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_config_wraps_upstream_with_the_papers_settings(path):
    row, settings = _row(path)
    algo, upstream = row[:2]
    if path in STANDARD_CONFIGS:
        assert f"'mmpretrain::{upstream}'" in path.read_text()
    cfg = Config.fromfile(str(path))
    model = cfg.model
    assert model.type == 'AdversarialMIMWrapper'
    assert model.algorithm.type == algo
    got = dict(model.attack, adapter=model.adapter,
               loss_ratio=model.loss_ratio, adv_ratio=model.adv_ratio)
    assert {k: got[k] for k in settings} == settings
    assert cfg.train_dataloader.collate_fn == dict(type='default_collate')
    assert cfg.model_wrapper_cfg.type == 'AEMIMDistributedDataParallel'
    if cfg.get('find_unused_parameters'):
        assert cfg.model_wrapper_cfg.find_unused_parameters


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_config_builds_and_trains_its_model_with_small_overrides(
        path, tmp_path):
    _, _, backbone, neck, head, generator_changes, second = _row(path)[0]
    cfg = Config.fromfile(str(path))
    model = copy.deepcopy(cfg.model.to_dict())
    algorithm = model['algorithm']
    algorithm['backbone'].update(backbone)
    if neck is not None:
        algorithm['neck'].update(neck)
    algorithm['head'].update(head)
    algorithm.update(ALGORITHM_CHANGES.get(
        path.stem[len('fast_'):] if path.stem.startswith('fast_')
        else path.stem, {}))
    generator = algorithm.get('target_generator')
    tokenizer_state = None
    if generator is not None and 'tokenizer_path' in generator:    # CLIP
        assert generator['tokenizer_path'].startswith('https://')
        generator['tokenizer_path'] = tiny_clip_checkpoint(
            str(tmp_path / 'clip.pth'), img=224, patch=16, embed_dim=512)
    elif generator is not None and 'init_cfg' in generator:   # Pretrained
        assert generator['init_cfg']['type'] == 'Pretrained'
        assert generator['init_cfg']['checkpoint'].startswith('https://')
        for key, value in generator_changes.items():
            if isinstance(value, dict):     # VQKD's encoder_config
                generator[key] = dict(generator[key], **value)
            else:
                generator[key] = value
        tokenizer = MODELS.build(dict(generator, init_cfg=None))
        tokenizer_state = {k: torch.randn_like(v.float()).to(v.dtype)
                           for k, v in tokenizer.state_dict().items()}
        torch.save(tokenizer_state, tmp_path / 'tokenizer.pth')
        generator['init_cfg']['checkpoint'] = str(tmp_path / 'tokenizer.pth')
    # as mmengine's Runner does with the top-level data_preprocessor
    model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    wrapper = MODELS.build(model)
    wrapper.init_weights()
    if tokenizer_state is not None:     # loaded from the local checkpoint
        loaded = wrapper.algorithm.target_generator.state_dict()
        for key, value in tokenizer_state.items():
            assert_close(loaded[key], value, msg=key)
    inputs = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    if second is not None:      # [model view, tokenizer view]
        inputs = [inputs, torch.randint(0, 256, (2, 3, second, second),
                                        dtype=torch.uint8)]
    data = wrapper.data_preprocessor(
        dict(inputs=inputs, data_samples=_masked_samples(2)), True)
    out = wrapper(**data, mode='loss')
    total, _ = wrapper.parse_losses(out)
    assert torch.isfinite(total)
    assert_close(out['adv_linf'], torch.tensor(2.0), atol=1e-3, rtol=0)
