"""Every way a checkpoint enters a run keeps ``weights_only=True``.

``tests/test_safe_load.py`` tests the allow-list itself and ``Runner`` resume
/ ``load_from`` with a toy model; ``tests/test_tools.py`` tests
``tools/train.py --resume``. This file covers what those do not:

* a static audit: no source of the package or its tools passes
  ``weights_only=False``, and every direct ``torch.load`` passes
  ``weights_only=True``; mmengine's checkpoint loaders (which ``load_from``,
  ``resume`` and ``init_cfg=dict(type='Pretrained')`` go through) call
  ``torch.load`` without ``weights_only``, i.e. with torch's safe default,
  except for downloads (``torch.hub``, unsafe by default), which aemim_mm
  re-routes;
* a genuine checkpoint of an AEMIM run (``AdversarialMIMWrapper`` trained by
  mmengine's ``Runner``) loads through ``load_from``, through
  ``init_cfg=dict(type='Pretrained')`` on the wrapper, on its algorithm's
  backbone and decoder and on mmpretrain's ``VisionTransformer`` (the
  fine-tuning path), and through a URL (a local HTTP server);
* a crafted checkpoint whose unpickling would create a file is refused on each
  of these paths with torch's ``weights_only`` error, and the file is never
  created.
"""
import ast
import copy
import functools
import http.server
import inspect
import pathlib
import pickle
import re
import shutil
import socket
import threading
import urllib.error
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import CheckpointLoader, Runner
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.utils.dl_utils import load_url as mmengine_load_url
from PIL import Image

import aemim_mm  # noqa: F401  (registration + checkpoint allow-list)
from aemim_mm.models.wrapper import reapply_overwritten_pretrained
from aemim_mm.utils.safe_load import (CheckpointDownloadError,
                                      UnsafeCheckpointError,
                                      load_from_local_safely, load_url_safely,
                                      mmengine_loaders, safe_load)
from mmpretrain.registry import MODELS

from module_loader import load_tiny_models

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO_ROOT / 'aemim_mm').rglob('*.py')) + sorted(
    (REPO_ROOT / 'tools').rglob('*.py'))


TINY = load_tiny_models()


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmpretrain')


# ------------------------------------------------------------- static audit
def _weights_only_calls(path: Path) -> List[str]:
    """Problems: ``weights_only=False`` anywhere, bare ``torch.load``."""
    problems = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        wo = kw.get('weights_only')
        if wo is not None and not (isinstance(wo, ast.Constant)
                                   and wo.value is True):
            problems.append(f'{path}:{node.lineno}: weights_only='
                            f'{ast.unparse(wo)}')
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == 'load' and \
                isinstance(func.value, ast.Name) and func.value.id == 'torch' \
                and wo is None:
            problems.append(f'{path}:{node.lineno}: torch.load without '
                            'weights_only=True')
    return problems


def test_audit_finds_the_sources() -> None:
    # the audit below looks at real files, and it can fail
    assert len(SOURCES) > 10
    assert any(p.name == 'safe_load.py' for p in SOURCES)
    bad = ('torch.load(f)\ntorch.load(f, weights_only=False)\n'
           'load_checkpoint(m, f, weights_only=flag)\n')
    tmp = REPO_ROOT / 'tests' / '__audit_probe__.py'
    try:
        tmp.write_text(bad)
        assert len(_weights_only_calls(tmp)) == 3
    finally:
        tmp.unlink()


@pytest.mark.parametrize('path', SOURCES,
                         ids=[str(p.relative_to(REPO_ROOT)) for p in SOURCES])
def test_package_and_tools_keep_weights_only(path: Path) -> None:
    assert _weights_only_calls(path) == []


def test_mmengine_loaders_use_torch_default() -> None:
    """``load_from`` / ``resume`` / ``Pretrained`` of mmengine's storage
    backends end in these calls (downloads: see the tests at the end)."""
    from mmengine.runner import checkpoint
    source = inspect.getsource(checkpoint)
    calls = re.findall(r'torch\.load\(([^)]*)\)', source)
    assert len(calls) >= 3, calls  # local file, URL, petrel / other backends
    assert not any('weights_only' in c for c in calls), calls
    # ... and torch's default is the safe one
    assert inspect.signature(torch.load).parameters['weights_only'].default \
        in (None, True)


# --------------------------------------------------------- genuine checkpoint
def _image_folder(root: Path, num: int = 8) -> Path:
    folder = root / 'train' / 'a'
    folder.mkdir(parents=True)
    for i in range(num):
        img = (np.random.RandomState(i).rand(TINY.IMG, TINY.IMG, 3) *
               255).astype(np.uint8)
        Image.fromarray(img).save(folder / f'{i}.png')
    return root


BACKBONES = dict(MAEViT=TINY.MAE_VIT, TimmMAEViT=TINY.TIMM_VIT)


def _runner_cfg(data_root: Path, work_dir: Path, backbone: str = 'MAEViT',
                **kwargs) -> Config:
    cfg = dict(
        model=dict(type='AdversarialMIMWrapper',
                   algorithm=TINY.mae_cfg(BACKBONES[backbone]),
                   attack=dict(type='FeatureDistancePGD', eps=2, steps=1)),
        work_dir=str(work_dir),
        default_scope='mmpretrain',
        train_dataloader=dict(
            batch_size=4,
            num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=dict(
                type='CustomDataset',
                data_root=str(data_root),
                data_prefix='train',
                with_label=False,
                pipeline=[dict(type='LoadImageFromFile'),
                          dict(type='PackInputs')])),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=2),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False)),
        log_processor=dict(by_epoch=False, window_size=1),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        randomness=dict(seed=0))
    cfg.update(kwargs)
    return Config(cfg)


@pytest.fixture(scope='module')
def run_checkpoints(tmp_path_factory: pytest.TempPathFactory):
    """``iter_2.pth`` of a real AEMIM run (wrapper + Runner, 2 iterations),
    one per MAE backbone, trained on first use."""
    root = tmp_path_factory.mktemp('aemim_runs')
    data = _image_folder(root / 'data')
    done: Dict[str, Path] = {}

    def get(backbone: str = 'MAEViT') -> Path:
        if backbone not in done:
            work = root / f'work_{backbone}'
            Runner.from_cfg(_runner_cfg(data, work, backbone)).train()
            ckpt = work / 'iter_2.pth'
            # a genuine mmengine checkpoint: message hub (HistoryBuffer,
            # numpy), adversarial adapters
            assert 'message_hub' in safe_load(ckpt)
            done[backbone] = ckpt
        return done[backbone]

    return get


@pytest.fixture
def aemim_ckpt(run_checkpoints) -> Path:
    """The checkpoint of the AEMIM run with mmpretrain's ``MAEViT``."""
    return run_checkpoints('MAEViT')


def _state(ckpt: Path) -> Dict[str, torch.Tensor]:
    return safe_load(ckpt)['state_dict']


def _non_adv(state: Dict[str, torch.Tensor]) -> List[str]:
    """The keys of ``state`` that are not adversarial adapters."""
    return [k for k in state if not k.rsplit('.', 1)[-1].startswith('adv_')]


def _assert_loaded(model_state: Dict[str, torch.Tensor],
                   expected: Dict[str, torch.Tensor], prefix: str = '',
                   skip_adv: bool = False) -> int:
    """Every ``prefix`` key of ``expected`` equals the model's; returns count."""
    n = 0
    for key, value in expected.items():
        if not key.startswith(prefix) or (skip_adv and '.adv_' in key) or (
                skip_adv and key.rsplit('.', 1)[-1].startswith('adv_')):
            continue
        torch.testing.assert_close(
            model_state[key[len(prefix):]], value, rtol=0, atol=0, msg=key)
        n += 1
    return n


def test_load_from_genuine_aemim_checkpoint(aemim_ckpt: Path,
                                            tmp_path: Path) -> None:
    runner = Runner.from_cfg(
        _runner_cfg(tmp_path / 'unused', tmp_path / 'work',
                    load_from=str(aemim_ckpt)))
    runner.load_or_resume()
    expected = _state(aemim_ckpt)
    assert any(k.rsplit('.', 1)[-1].startswith('adv_') for k in expected)
    assert _assert_loaded(runner.model.state_dict(), expected) == len(expected)


def test_pretrained_init_cfg_on_the_wrapper(aemim_ckpt: Path) -> None:
    model = MODELS.build(
        dict(type='AdversarialMIMWrapper', algorithm=TINY.mae_cfg(),
             init_cfg=dict(type='Pretrained', checkpoint=str(aemim_ckpt))))
    model.init_weights()
    # the clean weights come from the checkpoint (the wrapper then copies the
    # clean adapters to the adversarial ones, by design)
    n = _assert_loaded(model.state_dict(), _state(aemim_ckpt), skip_adv=True)
    assert n > 10


@pytest.mark.parametrize('part, backbone', [
    ('backbone', 'MAEViT'), ('backbone', 'TimmMAEViT'),
    ('neck', 'MAEViT'),     # MAEPretrainDecoder re-initialises mask_token
])
def test_pretrained_init_cfg_on_a_part_of_the_algorithm(
        run_checkpoints, part: str, backbone: str) -> None:
    ckpt = run_checkpoints(backbone)
    algorithm = TINY.mae_cfg(BACKBONES[backbone])
    algorithm[part]['init_cfg'] = dict(
        type='Pretrained', checkpoint=str(ckpt), prefix=f'{part}.')
    model = MODELS.build(
        dict(type='AdversarialMIMWrapper', algorithm=algorithm))
    model.init_weights()
    state = getattr(model.algorithm, part).state_dict()
    n = _assert_loaded(state, _state(ckpt), prefix=f'{part}.', skip_adv=True)
    assert n == len(_non_adv(state))


@pytest.mark.parametrize('part, cls', [('backbone', 'MAEViT'),
                                       ('neck', 'MAEPretrainDecoder')])
def test_upstream_still_overwrites_pretrained(run_checkpoints, part: str,
                                              cls: str) -> None:
    """Control: plain mmpretrain MAE (not wrapped) loses what Pretrained
    loaded into these parts. If this fails, mmpretrain fixed it and
    ``PRETRAINED_OVERWRITTEN_BY`` in the wrapper can go."""
    ckpt = run_checkpoints('MAEViT')
    algorithm = TINY.mae_cfg()
    algorithm[part]['init_cfg'] = dict(
        type='Pretrained', checkpoint=str(ckpt), prefix=f'{part}.')
    model = MODELS.build(algorithm)
    assert type(getattr(model, part)).__name__ == cls
    model.init_weights()
    with pytest.raises(AssertionError):
        _assert_loaded(getattr(model, part).state_dict(), _state(ckpt),
                       prefix=f'{part}.', skip_adv=True)


@pytest.mark.parametrize('where, reloaded', [
    ('backbone', ['algorithm.backbone']),
    ('neck', ['algorithm.neck']),
    ('both', ['algorithm.backbone', 'algorithm.neck']),
    # the algorithm's own Pretrained came after its parts' init_weights
    ('algorithm', []),
    ('none', []),
])
def test_which_pretrained_is_applied_again(run_checkpoints, where: str,
                                           reloaded: List[str]) -> None:
    ckpt = str(run_checkpoints('MAEViT'))
    algorithm = TINY.mae_cfg()
    for part in ('backbone', 'neck'):
        if where in (part, 'both'):
            algorithm[part]['init_cfg'] = dict(
                type='Pretrained', checkpoint=ckpt, prefix=f'{part}.')
    if where == 'algorithm':
        algorithm['init_cfg'] = dict(type='Pretrained', checkpoint=ckpt)
    model = MODELS.build(
        dict(type='AdversarialMIMWrapper', algorithm=algorithm))
    model.init_weights()    # already applied them again, as below
    assert reapply_overwritten_pretrained(model.algorithm) == reloaded
    if where == 'algorithm':
        n = _assert_loaded(model.state_dict(), _state(ckpt), skip_adv=True)
        assert n == len(_non_adv(model.state_dict()))


def test_pretrained_init_cfg_on_mmpretrain_vit(aemim_ckpt: Path) -> None:
    """Fine-tuning: mmpretrain's ViT from the AEMIM encoder (adv_ dropped)."""
    vit = copy.deepcopy(TINY.MAE_VIT)
    vit.update(type='VisionTransformer', out_type='cls_token',
               init_cfg=dict(type='Pretrained', checkpoint=str(aemim_ckpt),
                             prefix='backbone.'))
    vit.pop('mask_ratio')
    model = MODELS.build(vit)
    model.init_weights()
    n = _assert_loaded(model.state_dict(), _state(aemim_ckpt),
                       prefix='backbone.', skip_adv=True)
    assert n == len(model.state_dict())


# ---------------------------------------------------------- crafted payload
class TouchFile:
    """Unpickling it would create ``marker`` (a stand-in for an attack)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker), ))


#: torch's refusal: the weights-only unpickler names the offending global.
# aemim_mm routes mmengine's local loads through safe_load: the refusal names
# the file and the disallowed global.
REFUSED = (r"(?s)Refused to load checkpoint '[^']*evil\.pth'.*"
           r'Unsupported global: GLOBAL pathlib\.Path')


@pytest.fixture
def evil_ckpt(aemim_ckpt: Path, tmp_path: Path):
    """A genuine checkpoint with a payload added; and the payload's marker."""
    marker = tmp_path / 'payload_ran'
    ckpt = safe_load(aemim_ckpt)
    ckpt['meta']['note'] = TouchFile(marker)
    path = tmp_path / 'evil.pth'
    torch.save(ckpt, path)
    # control: an unsafe load would run it
    assert not marker.exists()
    return path, marker


def test_control_the_payload_runs_when_unpickled(tmp_path: Path) -> None:
    # so that "not marker.exists()" below means something
    marker = tmp_path / 'control'
    pickle.loads(pickle.dumps(TouchFile(marker)))
    assert marker.exists()


@pytest.mark.parametrize('resume', [False, True], ids=['load_from', 'resume'])
def test_load_from_refuses_payload(evil_ckpt, tmp_path: Path,
                                   resume: bool) -> None:
    path, marker = evil_ckpt
    runner = Runner.from_cfg(
        _runner_cfg(tmp_path / 'unused', tmp_path / 'work',
                    load_from=str(path), resume=resume))
    with pytest.raises(pickle.UnpicklingError, match=REFUSED):
        runner.load_or_resume()
    assert not marker.exists()


@pytest.mark.parametrize('where', ['wrapper', 'backbone', 'vit'])
def test_pretrained_init_cfg_refuses_payload(evil_ckpt, where: str) -> None:
    path, marker = evil_ckpt
    pretrained = dict(type='Pretrained', checkpoint=str(path))
    if where == 'vit':
        cfg = copy.deepcopy(TINY.MAE_VIT)
        cfg.pop('mask_ratio')
        cfg.update(type='VisionTransformer',
                   init_cfg=dict(pretrained, prefix='backbone.'))
    else:
        algorithm = TINY.mae_cfg()
        if where == 'backbone':
            algorithm['backbone']['init_cfg'] = dict(
                pretrained, prefix='backbone.')
        cfg = dict(type='AdversarialMIMWrapper', algorithm=algorithm,
                   init_cfg=pretrained if where == 'wrapper' else None)
    model = MODELS.build(cfg)
    with pytest.raises(pickle.UnpicklingError, match=REFUSED):
        model.init_weights()
    assert not marker.exists()


def test_refusal_names_the_checkpoint_file(evil_ckpt, tmp_path: Path) -> None:
    path, marker = evil_ckpt
    runner = Runner.from_cfg(
        _runner_cfg(tmp_path / 'unused', tmp_path / 'work',
                    load_from=str(path)))
    with pytest.raises(pickle.UnpicklingError, match=re.escape(str(path))):
        runner.load_or_resume()
    assert not marker.exists()


# -------------------------------------------------------------- downloads
@pytest.fixture
def served(tmp_path: Path, monkeypatch):
    """Serve a folder over HTTP on localhost; torch's hub cache in tmp.

    Yields:
        ``(folder, base_url, hub_checkpoints)``.
    """
    folder = tmp_path / 'served'
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    try:
        yield (folder, f'http://127.0.0.1:{server.server_address[1]}',
               tmp_path / 'hub' / 'checkpoints')
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize('prefix', ['http://', 'https://'])
def test_downloads_end_in_the_safe_load_url(prefix: str) -> None:
    """The URL schemes use mmengine's ``load_from_http``, which downloads with
    ``load_url``; the model-zoo schemes call it too (refusal tests below)."""
    loader = CheckpointLoader._get_checkpoint_loader(prefix + 'host/a.pth')
    assert loader is mmengine_checkpoint.load_from_http
    assert mmengine_checkpoint.load_url is load_url_safely


def test_torch_hub_download_default_is_unsafe() -> None:
    """Why the URL loaders exist: mmengine downloads with this function."""
    assert inspect.signature(torch.hub.load_state_dict_from_url).parameters[
        'weights_only'].default is False


def test_download_of_a_genuine_checkpoint(aemim_ckpt: Path, served) -> None:
    folder, url, cache = served
    shutil.copy(aemim_ckpt, folder / 'aemim.pth')
    ckpt = CheckpointLoader.load_checkpoint(f'{url}/aemim.pth')
    for key, value in _state(aemim_ckpt).items():
        torch.testing.assert_close(ckpt['state_dict'][key], value)
    assert (cache / 'aemim.pth').is_file()      # torch.hub's cache layout


def _closed_port_url() -> str:
    """A localhost URL on a port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    return f'http://127.0.0.1:{port}'


@pytest.mark.parametrize('failure, reason', [
    ('missing file', urllib.error.HTTPError),     # the server answers 404
    ('no server', urllib.error.URLError),         # connection refused
])
def test_failed_download_is_a_url_error_naming_url_and_cache(
        served, failure: str, reason: type) -> None:
    _, url, cache = served
    if failure == 'no server':
        url = _closed_port_url()
    path = cache / 'missing.pth'
    # what code written for mmengine's own download catches
    with pytest.raises(
            urllib.error.URLError,
            match=rf"Could not download checkpoint "
            rf"'{re.escape(url)}/missing\.pth' to '{re.escape(str(path))}'"):
        CheckpointLoader.load_checkpoint(f'{url}/missing.pth')
    with pytest.raises(CheckpointDownloadError) as info:
        load_url_safely(f'{url}/missing.pth')
    error = info.value
    assert isinstance(error, OSError)
    assert (error.url, error.filename) == (f'{url}/missing.pth', str(path))
    assert isinstance(error.__cause__, reason)
    if reason is urllib.error.HTTPError:    # urllib's attributes, e.code
        assert isinstance(error, urllib.error.HTTPError)
        assert error.code == 404
        assert error.reason == error.msg == error.__cause__.msg
        assert 'HTTP Error 404' in str(error)
    else:
        assert not isinstance(error, urllib.error.HTTPError)
        assert isinstance(error.reason, reason)
    assert not path.exists()     # nothing half-written


def test_legacy_zip_download_is_extracted_and_loaded_safely(
        served, tmp_path: Path) -> None:
    """torch.hub's legacy format (a zip around one old-style .pth), which
    mmengine loads over http: extracted beside the download, then loaded
    with weights_only."""
    import zipfile
    folder, url, cache = served
    inner = tmp_path / 'inner.pth'
    torch.save({'state_dict': {'w': torch.arange(3.)}}, inner,
               _use_new_zipfile_serialization=False)
    with zipfile.ZipFile(folder / 'legacy.pth', 'w') as archive:
        archive.write(inner, 'legacy_inner.pth')
    ckpt = CheckpointLoader.load_checkpoint(f'{url}/legacy.pth')
    torch.testing.assert_close(ckpt['state_dict']['w'], torch.arange(3.))
    assert (cache / 'legacy_inner.pth').is_file()


def test_legacy_zip_member_that_is_a_path_is_refused(served,
                                                     tmp_path: Path) -> None:
    import zipfile
    folder, url, cache = served
    with zipfile.ZipFile(folder / 'evil.pth', 'w') as archive:
        archive.writestr('../outside.pth', b'x')
    with pytest.raises(RuntimeError, match=r"'\.\./outside\.pth'.*not a "
                       r"plain file name"):
        load_url_safely(f'{url}/evil.pth')
    assert not (cache.parent / 'outside.pth').exists()


# ------------------------------------------ mmengine's own loaders, per call
class _TouchFile:
    """Unpickling it would create ``marker`` (no AEMIM run needed)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker), ))


@pytest.fixture
def crafted(tmp_path: Path, served):
    """A crafted checkpoint, as a local path and as a URL; and its marker."""
    folder, url, _ = served
    marker = tmp_path / 'payload_ran'
    torch.save({'state_dict': {}, 'meta': _TouchFile(marker)},
               folder / 'crafted.pth')
    return dict(local=str(folder / 'crafted.pth'),
                url=f'{url}/crafted.pth'), marker


#: torch's own refusal, as mmengine's loaders raise it (no file name).
TORCH_REFUSAL = r'(?s)Weights only load failed.*GLOBAL pathlib\.Path'


@pytest.mark.parametrize('where', ['local', 'url'])
def test_mmengine_loaders_give_mmengine_behaviour_for_one_block(
        crafted, where: str) -> None:
    paths, marker = crafted
    path = paths[where]
    with mmengine_loaders():
        # mmengine's own loader: torch's error, no aemim_mm refusal ...
        with pytest.raises(pickle.UnpicklingError,
                           match=TORCH_REFUSAL) as info:
            CheckpointLoader.load_checkpoint(path)
        assert not isinstance(info.value, UnsafeCheckpointError)
        # ... with the registrations unchanged (nothing global switched)
        assert CheckpointLoader._get_checkpoint_loader(path) in (
            load_from_local_safely, mmengine_checkpoint.load_from_http)
        assert mmengine_checkpoint.load_url is load_url_safely
    # after the block: aemim_mm's loaders again
    with pytest.raises(UnsafeCheckpointError,
                       match=r"Refused to load checkpoint '.*crafted\.pth'"):
        CheckpointLoader.load_checkpoint(path)
    assert not marker.exists()      # weights_only stayed on throughout


def test_mmengine_loaders_is_left_on_error(crafted) -> None:
    paths, _ = crafted
    with pytest.raises(RuntimeError, match='inside the block'):
        with mmengine_loaders():
            raise RuntimeError('inside the block')
    with pytest.raises(UnsafeCheckpointError):
        CheckpointLoader.load_checkpoint(paths['local'])


def test_mmengine_loaders_is_not_a_global_switch(crafted) -> None:
    """Another thread keeps aemim_mm's loaders while one uses the block."""
    paths, marker = crafted
    errors: Dict[str, BaseException] = {}

    def load(name: str) -> None:
        try:
            CheckpointLoader.load_checkpoint(paths['local'])
        except BaseException as e:  # noqa: B902 (recorded, checked below)
            errors[name] = e

    with mmengine_loaders():
        other = threading.Thread(target=load, args=('other thread', ))
        other.start()
        other.join(timeout=120)
        load('this thread')
    assert isinstance(errors['other thread'], UnsafeCheckpointError)
    assert not isinstance(errors['this thread'], UnsafeCheckpointError)
    assert isinstance(errors['this thread'], pickle.UnpicklingError)
    assert not marker.exists()


@pytest.mark.parametrize('load', [
    lambda path: CheckpointLoader.load_checkpoint(path),
    lambda path: safe_load(path),
], ids=['mmengine', 'safe_load'])
def test_mmengine_loaders_load_a_plain_checkpoint(
        served, load: Callable, tmp_path: Path) -> None:
    folder, url, cache = served
    torch.save({'state_dict': {'w': torch.arange(3.)}}, folder / 'plain.pth')
    with mmengine_loaders():
        ckpt = load(str(folder / 'plain.pth'))
        assert torch.equal(ckpt['state_dict']['w'], torch.arange(3.))
        downloaded = CheckpointLoader.load_checkpoint(f'{url}/plain.pth')
    assert torch.equal(downloaded['state_dict']['w'], torch.arange(3.))
    assert (cache / 'plain.pth').is_file()      # torch.hub's cache, as before


def test_mmengine_loaders_give_torch_hub_download_errors(served) -> None:
    _, url, _ = served
    with mmengine_loaders():
        with pytest.raises(urllib.error.HTTPError, match='404') as info:
            CheckpointLoader.load_checkpoint(f'{url}/missing.pth')
    assert not isinstance(info.value, CheckpointDownloadError)


def test_mmengine_download_runs_the_payload(evil_ckpt, served,
                                            tmp_path: Path) -> None:
    """Control: mmengine's own download function (torch.hub's, with
    weights_only=False) unpickles the payload, so the refusals below mean
    something."""
    path, marker = evil_ckpt
    folder, url, _ = served
    shutil.copy(path, folder / 'evil.pth')
    assert mmengine_load_url is torch.hub.load_state_dict_from_url
    mmengine_load_url(f'{url}/evil.pth', model_dir=str(tmp_path / 'other'))
    assert marker.exists()


#: The model-zoo schemes and the mmengine function that names their URLs.
ZOO_SCHEMES = {'torchvision://': 'get_torchvision_models',
               'modelzoo://': 'get_torchvision_models',
               'open-mmlab://': 'get_external_models',
               'openmmlab://': 'get_external_models',
               'mmcls://': 'get_mmcls_models'}


@pytest.mark.parametrize('how', ['url', 'Pretrained', *ZOO_SCHEMES])
def test_download_refuses_payload(evil_ckpt, served, monkeypatch,
                                  how: str) -> None:
    path, marker = evil_ckpt
    folder, url, cache = served
    shutil.copy(path, folder / 'evil.pth')
    if how == 'url':
        load = functools.partial(CheckpointLoader.load_checkpoint,
                                 f'{url}/evil.pth')
    elif how == 'Pretrained':
        load = MODELS.build(
            dict(type='AdversarialMIMWrapper', algorithm=TINY.mae_cfg(),
                 init_cfg=dict(type='Pretrained',
                               checkpoint=f'{url}/evil.pth'))).init_weights
    else:
        monkeypatch.setattr(mmengine_checkpoint, ZOO_SCHEMES[how],
                            lambda: {'evil': f'{url}/evil.pth'})
        load = functools.partial(CheckpointLoader.load_checkpoint,
                                 f'{how}evil')
    with pytest.raises(UnsafeCheckpointError,
                       match=re.escape(str(cache / 'evil.pth'))):
        load()
    assert not marker.exists()
