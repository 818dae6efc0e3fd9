"""The install: aemim_mm's import footprint, the pinned versions, full mmcv's
compiled ops and mmdet's Mask R-CNN on CPU.

The detection tests skip when full mmcv / mmdet are missing (an install of the
``core`` extra only), unless ``AEMIM_REQUIRE_DET=1`` (``make test`` sets it):
then they fail.
"""
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / 'requirements' / 'constraints.txt'
REQUIRE_DET = os.environ.get('AEMIM_REQUIRE_DET') == '1'
# Pinned build / install tools: not checked against the environment.
TOOLS = {'pip', 'ninja'}


def read_pins():
    """{canonical name: version} of requirements/constraints.txt."""
    pins = {}
    for line in CONSTRAINTS.read_text(encoding='utf-8').splitlines():
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r'([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)', line)
        assert match, f'{CONSTRAINTS}: expected "name==version", got {line!r}'
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def installed(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def matches(version, pin):
    """``2.15.0+cu132`` matches the pin ``2.15.0`` (PEP 440 local versions)."""
    return Version(version) in SpecifierSet(f'=={pin}')


def skip_or_fail(reason):
    if REQUIRE_DET:
        pytest.fail(f'{reason} (AEMIM_REQUIRE_DET=1: detection must be installed; '
                    'run make env-det)')
    pytest.skip(f'{reason}; run make env-det')


def require_full_mmcv():
    version = installed('mmcv')
    if version is None:
        skip_or_fail(f'full mmcv is not installed (mmcv-lite: {installed("mmcv-lite")})')
    try:
        from mmcv import ops  # noqa: F401
    except ImportError as e:
        skip_or_fail(f'mmcv {version} is installed but mmcv.ops does not load: {e!r}')


def require_mmdet():
    require_full_mmcv()
    if installed('mmdet') is None:
        skip_or_fail('mmdet is not installed')


# --- (a) import footprint ------------------------------------------------------

# mmpretrain itself imports mmdet when it is installed (inside try/except, in
# mmpretrain.models.utils.res_layer_extra_norm), so "mmdet not in sys.modules"
# cannot hold in a detection environment. The test blocks mmdet instead and
# records who tries to import it: import aemim_mm must work without mmdet, and
# no aemim_mm module may be the importer (aemim_mm.det is not imported).
BLOCK_MMDET = """
import importlib.abc, json, sys
attempts = []

class BlockMMDet(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] != 'mmdet':
            return None
        frame = sys._getframe(1)
        while frame and frame.f_globals.get('__name__', '').startswith(
                ('importlib', '_frozen_importlib')):
            frame = frame.f_back
        attempts.append([name, frame.f_globals.get('__name__') if frame else None])
        raise ModuleNotFoundError(f'No module named {name!r} (blocked)', name=name)

sys.meta_path.insert(0, BlockMMDet())
import aemim_mm
print(json.dumps({'attempts': attempts,
                  'mmdet_modules': [m for m in sys.modules if m.split('.')[0] == 'mmdet'],
                  'det_loaded': 'aemim_mm.det' in sys.modules}))
"""


def test_import_aemim_mm_does_not_import_mmdet():
    proc = subprocess.run([sys.executable, '-c', BLOCK_MMDET], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (
        f'import aemim_mm failed with mmdet unavailable:\n{proc.stderr[-3000:]}')
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    ours = [a for a in result['attempts'] if (a[1] or '').split('.')[0] == 'aemim_mm']
    assert not ours, f'aemim_mm modules import mmdet ([module, importer]): {ours}'
    assert not result['mmdet_modules']
    assert not result['det_loaded'], 'import aemim_mm imports aemim_mm.det'


# --- (b) pinned versions -------------------------------------------------------

@pytest.mark.parametrize('name', ['torch', 'torchvision', 'mmengine', 'mmpretrain'])
def test_core_versions_match_constraints(name):
    pin = read_pins()[name]
    version = installed(name)
    assert version is not None, f'{name} is not installed (pinned: {pin})'
    assert matches(version, pin), (
        f'{name} {version} is installed, {CONSTRAINTS.name} pins {pin}')


def test_one_mmcv_flavour_at_the_pinned_version():
    full, lite = installed('mmcv'), installed('mmcv-lite')
    assert not (full and lite), (
        f'mmcv {full} and mmcv-lite {lite} are both installed; they share the mmcv/ '
        'folder: run tools/install_mmcv.sh to repair')
    assert full or lite, 'neither mmcv nor mmcv-lite is installed'
    pins = read_pins()
    name, version = ('mmcv', full) if full else ('mmcv-lite', lite)
    assert matches(version, pins[name]), f'{name} {version} installed, pinned {pins[name]}'
    import mmcv
    assert mmcv.__version__ == version


def test_every_installed_pinned_package_matches():
    wrong = {name: (installed(name), pin) for name, pin in read_pins().items()
             if name not in TOOLS and installed(name) and not matches(installed(name), pin)}
    assert not wrong, f'installed != pinned (name: (installed, pinned)): {wrong}'


def test_pkg_resources_available_for_mmengine():
    version = installed('setuptools')
    assert version and Version('77.0.3') <= Version(version) < Version('81'), (
        f'setuptools {version}: mmengine needs pkg_resources (setuptools >=77.0.3,<81)')
    import pkg_resources  # noqa: F401


# --- (c) full mmcv ops ---------------------------------------------------------

def test_mmcv_nms_cpu():
    require_full_mmcv()
    import torch
    from mmcv.ops import nms
    # box 1 overlaps box 0 with IoU 81/100 > 0.5 and scores lower: dropped.
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    assert torch.allclose(dets, torch.tensor([[0., 0., 10., 10., 0.9],
                                              [20., 20., 30., 30., 0.7]]))
    # IoU 0.81 <= 0.9: both kept.
    _, keep = nms(boxes, scores, iou_threshold=0.9)
    assert keep.tolist() == [0, 1, 2]


def test_mmcv_roi_align_cpu():
    require_full_mmcv()
    import torch
    from mmcv.ops import roi_align
    # A constant map gives the constant.
    feat = torch.full((1, 2, 8, 8), 3.0)
    rois = torch.tensor([[0., 1., 1., 5., 5.]])
    out = roi_align(feat, rois, (2, 2), 1.0, 2, 'avg', True)
    assert out.shape == (1, 2, 2, 2)
    assert torch.allclose(out, torch.full_like(out, 3.0))
    # A horizontal ramp f(y, x) = x, aligned=True (pixel centres at +0.5): the
    # roi [0, 4] x [0, 4] has bins [-0.5, 1.5], [1.5, 3.5]; one sample per bin
    # at its centre: x = 0.5 and 2.5.
    ramp = torch.arange(8.).expand(1, 1, 8, 8).contiguous()
    out = roi_align(ramp, torch.tensor([[0., 0., 0., 4., 4.]]), (2, 2), 1.0, 1, 'avg', True)
    assert torch.allclose(out, torch.tensor([[[[0.5, 2.5], [0.5, 2.5]]]]))


def test_mmcv_ops_agree_with_torchvision():
    require_full_mmcv()
    import torch
    import torchvision.ops as tv
    from mmcv.ops import nms, roi_align
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=gen) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(50, 2, generator=gen) * 20], dim=1)
    scores = torch.rand(50, generator=gen)
    _, keep = nms(boxes, scores, iou_threshold=0.3)
    assert keep.tolist() == tv.nms(boxes, scores, 0.3).tolist()
    feat = torch.randn(2, 3, 16, 16, generator=gen)
    rois = torch.tensor([[0., 1., 2., 9., 12.], [1., 0.5, 0.5, 15., 7.]])
    ours = roi_align(feat, rois, (3, 3), 1.0, 2, 'avg', True)
    ref = tv.roi_align(feat, rois, (3, 3), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    assert torch.allclose(ours, ref, atol=1e-5)


# --- (d) mmdet -----------------------------------------------------------------

def test_mmdet_mask_rcnn_builds_and_predicts_on_cpu():
    require_mmdet()
    import numpy as np
    import mmdet
    from mmdet.apis import inference_detector, init_detector
    from mmengine.config import Config

    assert matches(mmdet.__version__, read_pins()['mmdet'])
    cfg_file = (Path(mmdet.__file__).parent / '.mim' / 'configs' / 'mask_rcnn' /
                'mask-rcnn_r50_fpn_1x_coco.py')
    assert cfg_file.is_file(), f'mmdet ships no {cfg_file}'
    cfg = Config.fromfile(str(cfg_file))
    cfg.model.backbone.init_cfg = None  # no pretrained download
    for step in cfg.test_dataloader.dataset.pipeline:  # small test image scale
        if step['type'] == 'Resize':
            step['scale'] = (160, 128)
    with pytest.warns(UserWarning, match='checkpoint is None'):
        model = init_detector(cfg, checkpoint=None, device='cpu')
    image = np.random.default_rng(0).integers(0, 256, (120, 150, 3), dtype=np.uint8)
    result = inference_detector(model, image)
    pred = result.pred_instances
    n = len(pred)
    assert pred.bboxes.shape == (n, 4) and pred.scores.shape == (n,)
    assert pred.labels.shape == (n,) and pred.masks.shape == (n, 120, 150)
    assert n <= cfg.model.test_cfg.rcnn.max_per_img
