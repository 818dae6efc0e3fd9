"""Shared pytest setup: keep this minimal. Component fixtures belong beside
their tests (e.g. tests/test_models/conftest.py), not here."""
import functools
import itertools
import os

import pytest

# Headless: matplotlib must not try to open a window.
os.environ.setdefault('MPLBACKEND', 'Agg')

_RUNNER_COUNT = itertools.count()  # session-wide: names never repeat


@pytest.fixture(autouse=True)
def _unique_runner_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give every in-process mmengine ``Runner`` its own experiment name.

    mmengine keys its logger, message hub and visualizer by experiment name,
    which defaults to the config's file name plus a timestamp with 1-second
    resolution. Two runners built in the same second of one process (fast
    tests do that) therefore share them: the second runner's log goes to the
    first runner's file and its scalars into the first runner's hub. A
    training job builds one runner per process, so this is a test-only
    concern; a numbered suffix removes it without touching the package.
    """
    try:
        from mmengine.runner import Runner
    except ImportError:  # an environment without mmengine: nothing to fix
        return
    original = Runner.__init__

    @functools.wraps(original)
    def init(self, *args, experiment_name=None, **kwargs):
        name = f'{experiment_name or "test"}_{next(_RUNNER_COUNT)}'
        original(self, *args, experiment_name=name, **kwargs)

    monkeypatch.setattr(Runner, '__init__', init)
