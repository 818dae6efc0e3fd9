"""End-to-end: ``tools/demo.py`` for a few iterations in a subprocess."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(REPO, 'tools', 'demo.py')
CONFIG = osp.join(REPO, 'configs', 'aemim_demo_skimage.py')


def test_set_iters_rescales_everything():
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        from demo import set_iters
    finally:
        sys.path.pop(0)
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG)
    old = cfg.train_cfg.max_iters
    set_iters(cfg, old // 3)
    n = old // 3
    assert cfg.train_cfg.max_iters == n
    warm, cos = cfg.param_scheduler
    assert 1 <= warm.end < n and cos.begin == warm.end and cos.end == n
    assert cos.T_max == n - warm.end
    assert cfg.default_hooks.checkpoint.interval == n
    pgd = [h for h in cfg.custom_hooks if h.type == 'FeatureDistancePGDHook']
    assert pgd[0].vis_interval <= n
    assert pgd[0].eps_schedule['warmup_iters'] <= n
    with pytest.raises(ValueError, match='iters'):
        set_iters(Config.fromfile(CONFIG), 1)


@pytest.mark.slow
def test_demo_runs_and_writes_outputs(tmp_path):
    from PIL import Image
    work_dir = tmp_path / 'demo'
    env = dict(os.environ, MPLBACKEND='Agg')
    proc = subprocess.run(
        [
            sys.executable, DEMO, '--iters', '4', '--work-dir',
            str(work_dir), '--cfg-options', 'train_dataloader.batch_size=8'
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert 'MISSING' not in out

    ckpts = glob.glob(str(work_dir / '*.pth'))
    assert ckpts, out[-2000:]
    logs = glob.glob(str(work_dir / '*' / '*.log'))
    assert len(logs) == 1
    log = open(logs[0]).read()
    assert 'rec_clean' in log and 'rec_adv' in log and 'eps' in log

    curves = work_dir / 'loss_curves.png'
    with Image.open(curves) as im:
        assert im.format == 'PNG' and im.size[0] >= 400 and im.size[1] >= 300
    records = json.loads((work_dir / 'loss_curves.json').read_text())
    assert records['records']['rec_adv']['iter'] == [1, 2, 3, 4]

    grids = glob.glob(
        str(work_dir / '*' / 'vis_data' / 'vis_image' / 'aemim_grid_*.png'))
    assert any(g.endswith('aemim_grid_4.png') for g in grids), grids
    img_size = 64  # the demo config's crop size
    with Image.open(sorted(grids)[-1]) as im:
        assert im.format == 'PNG' and im.mode == 'RGB'
        w, h = im.size
        # 4 columns (clean / adversarial / perturbation / reconstruction),
        # each at least one image wide; at least 1 row plus titles
        assert w >= 4 * img_size and h > img_size
