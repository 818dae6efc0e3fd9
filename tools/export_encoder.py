"""Export the clean encoder of a MIM pre-training checkpoint (with or
without AEMIM, any algorithm of docs/algorithms.md).

Usage::

    python tools/export_encoder.py SRC --out-dir DIR
        [--formats {mmpretrain,det,timm} ...] [--finetune-config CONFIG]

Writes ``DIR/<SRC stem>_<format>.pth`` for each format (default: all three):

* ``mmpretrain``: ``{'state_dict': {'backbone.*': ...}, 'meta': ...}`` for a
  fine-tuning config's ``model.backbone.init_cfg.checkpoint`` (every
  backbone; ``docs/downstream.md`` names the fine-tuning backbone of each);
* ``det``: the same content, for the detection configs (ViT only);
* ``timm``: a flat timm ``VisionTransformer`` state dict (ViT only).

The decoder, the adversarial adapters (``adv_*``) and the optimiser / message
hub state are dropped; the tool prints what it kept and dropped. Every output
holds tensors only and loads with ``torch.load(weights_only=True)``. A
checkpoint that cannot be exported, or a format that does not fit its
backbone, ends the tool with a one-line ``error:`` (exit status 1) and
writes nothing. With ``--finetune-config``, the ``mmpretrain`` export is
compared with that config's backbone: a ``WARNING`` line names the exported
tensors its (non-strict) loading would drop or skip, and the tool then ends
with exit status 2 (the files are written). See ``docs/downstream.md``.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

# ``python tools/export_encoder.py`` puts tools/ (not the repository root) on
# sys.path; add the root so that ``aemim_mm`` imports without installation.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from aemim_mm.apis.backbone_fit import (check_backbone_fit,  # noqa: E402
                                        finetune_backbone)
from aemim_mm.apis.export import FORMATS, export_encoder  # noqa: E402
from aemim_mm.apis.key_converters import CheckpointFormatError  # noqa: E402
from aemim_mm.utils.safe_load import UnsafeCheckpointError  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments (without the program name). Defaults to ``sys.argv``.

    Returns:
        The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Export the clean encoder of a MIM pre-training '
        'checkpoint (with or without AEMIM) for fine-tuning, detection or '
        'timm.')
    parser.add_argument('src', help='pre-training checkpoint (Runner format)')
    parser.add_argument(
        '--out-dir', required=True,
        help='output directory; files are named <src stem>_<format>.pth')
    parser.add_argument(
        '--formats', nargs='+', choices=FORMATS, default=list(FORMATS),
        help='formats to write (default: all)')
    parser.add_argument(
        '--finetune-config', metavar='CONFIG',
        help='a fine-tuning config: report what loading the mmpretrain '
        'export into its backbone would drop or initialise anew')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Export and print the report.

    Args:
        argv: Arguments (without the program name). Defaults to ``sys.argv``.

    Returns:
        0; 1 (with the reason on stderr) if nothing could be exported; 2 if
        the files were written but ``--finetune-config``'s backbone would
        drop or skip exported tensors.
    """
    args = parse_args(argv)
    backbone = None
    if args.finetune_config:
        if 'mmpretrain' not in args.formats:
            print('error: --finetune-config checks the mmpretrain export; '
                  'add mmpretrain to --formats', file=sys.stderr)
            return 1
        try:      # before the export: a bad config writes nothing
            from mmengine.config import Config

            import aemim_mm  # noqa: F401  (registers the components)
            backbone = finetune_backbone(
                Config.fromfile(args.finetune_config).model)
        except Exception as err:  # noqa: BLE001  (any config error)
            print(f'error: --finetune-config {args.finetune_config}: '
                  f'{type(err).__name__}: {err}', file=sys.stderr)
            return 1
    try:
        result = export_encoder(args.src, out_dir=args.out_dir,
                                formats=args.formats)
    except (CheckpointFormatError, UnsafeCheckpointError, ValueError,
            FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(result.summary())
    if backbone is None:
        return 0
    fit = check_backbone_fit(result.paths['mmpretrain'], backbone)
    print(fit.summary(f'the backbone of {args.finetune_config}'))
    return 2 if fit.loses_weights else 0


if __name__ == '__main__':
    sys.exit(main())
