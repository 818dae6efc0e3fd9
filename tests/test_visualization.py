"""Tests of :mod:`aemim_mm.visualization`: the image grid and the plots."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from aemim_mm.visualization import (make_image_grid, plot_accuracy_vs_eps,
                                    plot_corruption_heatmap,
                                    plot_loss_curves_by_method,
                                    to_uint8_images)


# ---------------------------------------------------------------- grid
def test_to_uint8_images_clips_and_repeats_gray():
    x = torch.tensor([-1.0, 0.0, 0.5, 2.0]).view(1, 1, 2, 2)
    out = to_uint8_images(x)
    assert out.shape == (1, 2, 2, 3) and out.dtype == np.uint8
    assert out[0, :, :, 0].tolist() == [[0, 0], [128, 255]]
    assert (out[..., 0] == out[..., 2]).all()
    with pytest.raises(ValueError, match='B, 3, H, W'):
        to_uint8_images(torch.zeros(2, 2, 4, 4))


def test_grid_layout_cells_and_titles():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 3, 8, 8, generator=g)
    b = torch.rand(2, 3, 8, 8, generator=g)
    grid = make_image_grid({'first': a, 'second': b}, max_rows=None,
                           min_cell_size=16, pad=4, title_height=20)
    # 2 columns, 2 rows (the smaller batch), cells enlarged 8 -> 16 px
    assert grid.shape == (20 + 2 * (16 + 4) + 4, 2 * (16 + 4) + 4, 3)
    assert grid.dtype == np.uint8
    cells = {'first': to_uint8_images(a), 'second': to_uint8_images(b)}
    for c, key in enumerate(cells):
        for r in range(2):
            y, x = 20 + 4 + r * 20, 4 + c * 20
            expected = cells[key][r].repeat(2, axis=0).repeat(2, axis=1)
            assert (grid[y:y + 16, x:x + 16] == expected).all()
    # padding is the background; each title strip above a column has text
    assert (grid[20:24] == 255).all() and (grid[:, :4] == 255).all()
    for c in range(2):
        assert (grid[:20, 4 + c * 20:20 + c * 20] < 255).any()


def test_grid_without_titles_and_rejections():
    x = torch.zeros(1, 3, 4, 4)
    grid = make_image_grid({'a': x}, min_cell_size=4, title_height=0)
    assert grid.shape == (4 + 4 + 4, 4 + 4 + 4, 3)
    with pytest.raises(ValueError, match='empty'):
        make_image_grid({})
    with pytest.raises(ValueError, match='same image size'):
        make_image_grid({'a': x, 'b': torch.zeros(1, 3, 5, 5)})


# ---------------------------------------------------------------- plots
def _png_size(path):
    with Image.open(path) as im:
        return im.size


def test_robustness_plots_write_pngs(tmp_path):
    heat = tmp_path / 'heat.png'
    plot_corruption_heatmap({'noise': {1: 80.0, 2: 50.0},
                             'blur': {1: 70.0}}, str(heat))
    assert _png_size(heat) == (648, 264)  # 5.4 x 2.2 in, 120 dpi
    eps = tmp_path / 'eps.png'
    plot_accuracy_vs_eps({'MAE': {'fgsm': {0: 90.0, 2: 40.0},
                                  'pgd': {0: 90.0, 2: 20.0}}}, str(eps))
    assert _png_size(eps) == (1200, 480)  # 2 panels of 5 x 4 in, 120 dpi


def test_loss_curves_by_method_writes_png(tmp_path):
    def curves(name, keys):
        path = tmp_path / f'{name}.json'
        its = list(range(20))
        path.write_text(json.dumps(dict(records={
            k: dict(iter=its, value=[1.0 / (i + 1) for i in its])
            for k in keys})))
        return dict(pretrain=dict(loss_curves=str(path)))

    results = dict(
        mae={0: curves('mae0', ['loss'])},
        aemim={0: curves('aemim0', ['rec_clean', 'rec_adv']),
               1: curves('aemim1', ['rec_clean', 'rec_adv'])})
    out = tmp_path / 'loss.png'
    assert plot_loss_curves_by_method(results, ['mae', 'aemim'], str(out),
                                      iters_per_epoch=5,
                                      labels=dict(aemim='AEMIM')) == str(out)
    assert _png_size(out) == (800, 650)


def test_former_plot_import_paths():
    from aemim_mm.evaluation import plots
    assert plots.plot_accuracy_vs_eps is plot_accuracy_vs_eps
    assert plots.plot_corruption_heatmap is plot_corruption_heatmap
