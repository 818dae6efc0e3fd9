"""Is the attack in mixed precision as strong as in fp32, for this model?

Builds the model of an AEMIM pre-training config (random initialisation, or
``--checkpoint``), takes the offline photos of ``skimage.data`` resized to
the model's input size, and runs the attack in fp32 and with
``amp_dtype`` from the same random start and masks
(:func:`aemim_mm.evaluation.attack_precision.compare_attack_precision`).
Prints, per number of steps, the feature distance at the start and after
each attack, the ratio of their gains over the start, the share of
first-step gradient signs that agree, and each attack's time. JSON to
``--out``.

Usage::

    python tools/attack_precision.py configs/fast_aemim_vit-s_300e.py \
        [--checkpoint CKPT] [--amp-dtype bfloat16] [--steps 1 2] \
        [--img-size 224] [--out FILE.json]
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import List, Optional

# ``python tools/attack_precision.py`` puts tools/ on sys.path, not the root.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import load_checkpoint  # noqa: E402

import aemim_mm  # noqa: E402,F401  (registration)
from aemim_mm.datasets.skimage_photos import (DEFAULT_PHOTOS,  # noqa: E402
                                              load_skimage_photo)
from aemim_mm.evaluation.attack_precision import (  # noqa: E402
    compare_attack_precision)
from aemim_mm.models.attack import AMP_DTYPES  # noqa: E402
from aemim_mm.utils.cli import init_weights_quietly  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='an AEMIM pre-training config')
    parser.add_argument('--checkpoint', default=None,
                        help='weights to load (default: random init)')
    parser.add_argument('--amp-dtype', choices=AMP_DTYPES,
                        default='bfloat16')
    parser.add_argument('--steps', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--img-size', type=int, default=224,
                        help='the photos are resized to this (square)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='work_dirs/attack_precision.json')
    args = parser.parse_args(argv)
    if any(t < 1 for t in args.steps):
        parser.error(f'--steps must be >= 1, got {args.steps}')
    if args.img_size < 1:
        parser.error(f'--img-size must be >= 1, got {args.img_size}')
    if not osp.isfile(args.config):
        parser.error(f'config: no such file {args.config!r}')
    if args.checkpoint and not osp.isfile(args.checkpoint):
        parser.error(f'--checkpoint: no such file {args.checkpoint!r}')
    return args


def photo_batch(size: int) -> dict:
    """The RGB photos of skimage.data as a ``default_collate`` batch (uint8
    BGR, like ``LoadImageFromFile``), resized to ``size`` x ``size``."""
    imgs = []
    for name in DEFAULT_PHOTOS:
        rgb = torch.from_numpy(load_skimage_photo(name)).permute(2, 0, 1)
        img = F.interpolate(rgb[None].float(), size=(size, size),
                            mode='bilinear', antialias=True)[0]
        imgs.append(img.round().clamp(0, 255).to(torch.uint8).flip(0))
    return dict(inputs=torch.stack(imgs),
                data_samples=[DataSample() for _ in imgs])


def format_rows(rows: List[dict], amp_dtype: str) -> str:
    """The comparison as a markdown table."""
    lines = [f'| steps | distance at start | fp32 attack | {amp_dtype} attack'
             f' | gain ratio | sign agreement | fp32 s | {amp_dtype} s |',
             '|' + '---|' * 8]
    for r in rows:
        lines.append(
            f'| {r["steps"]} | {r["dist_start"]:.4f} | {r["dist_fp32"]:.4f} '
            f'| {r["dist_amp"]:.4f} | {r["gain_ratio"]:.3f} | '
            f'{r["sign_agreement"]:.3f} | {r["time_fp32_s"]:.3f} | '
            f'{r["time_amp_s"]:.3f} |')
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    if cfg.model.get('type') != 'AdversarialMIMWrapper':
        raise SystemExit(f'config: model.type must be AdversarialMIMWrapper, '
                         f'got {cfg.model.get("type")!r}')
    torch.manual_seed(args.seed)
    model = MODELS.build(cfg.model)
    init_weights_quietly(model)
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.eval()
    data = model.data_preprocessor(photo_batch(args.img_size), False)
    rows = compare_attack_precision(model, data['inputs'],
                                    data['data_samples'], args.amp_dtype,
                                    args.steps, args.seed)
    result = dict(config=args.config, checkpoint=args.checkpoint,
                  amp_dtype=args.amp_dtype, images=list(DEFAULT_PHOTOS),
                  img_size=args.img_size, torch=torch.__version__,
                  threads=torch.get_num_threads(),
                  command='python tools/attack_precision.py ' + ' '.join(
                      sys.argv[1:] if argv is None else argv),
                  rows=rows)
    print(format_rows(rows, args.amp_dtype))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'JSON: {args.out}')
    return result


if __name__ == '__main__':
    main()
