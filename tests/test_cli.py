"""The command-line helpers shared by tools/train.py and tools/test.py."""
import argparse
import logging
import os.path as osp
from typing import List, Optional

import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger
from torch import nn

from aemim_mm.utils import cli


def parse(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    cli.add_runner_args(parser, 'logs', 'a=1')
    return cli.parse_runner_args(parser, argv)


@pytest.mark.parametrize('argv, env, expected', [
    ([], None, '0'),
    (['--local-rank', '3'], None, '3'),
    (['--local_rank', '2'], None, '2'),
    (['--local-rank', '3'], '5', '5'),      # the launcher's value wins
])
def test_local_rank_is_exported(monkeypatch, argv: List[str],
                                env: Optional[str], expected: str) -> None:
    if env is None:
        monkeypatch.delenv('LOCAL_RANK', raising=False)
    else:
        monkeypatch.setenv('LOCAL_RANK', env)
    parse(['c.py', *argv])
    assert cli.os.environ['LOCAL_RANK'] == expected


def test_bad_launcher_is_refused(capsys) -> None:
    with pytest.raises(SystemExit):
        parse(['c.py', '--launcher', 'k8s'])
    assert "--launcher: invalid choice: 'k8s'" in capsys.readouterr().err


@pytest.mark.parametrize('argv, in_config, expected', [
    ([], None, osp.join('./work_dirs', 'my_cfg')),
    ([], 'from_cfg', 'from_cfg'),
    (['--work-dir', 'cli'], 'from_cfg', 'cli'),
])
def test_work_dir_order(argv: List[str], in_config: Optional[str],
                        expected: str) -> None:
    cfg = Config(dict(work_dir=in_config) if in_config else {})
    cli.apply_runner_args(cfg, parse(['dir/my_cfg.py', *argv]))
    assert cfg.work_dir == expected
    assert cfg.launcher == 'none'


def test_cfg_options_merge_before_work_dir() -> None:
    cfg = Config(dict(a=dict(b=1)))
    args = parse(['c.py', '--cfg-options', 'a.b=2', 'work_dir=opt',
                  '--launcher', 'pytorch'])
    cli.apply_runner_args(cfg, args)
    assert cfg.a.b == 2
    assert cfg.work_dir == 'opt'
    assert cfg.launcher == 'pytorch'


@pytest.mark.parametrize('started', [True, False])
def test_run_ends_only_the_group_it_started(monkeypatch,
                                            started: bool) -> None:
    calls = []
    monkeypatch.setattr(cli, 'init_cpu_process_group', lambda cfg: started)
    monkeypatch.setattr(cli, 'end_process_group', lambda: calls.append('end'))
    monkeypatch.setattr(cli.Runner, 'from_cfg',
                        classmethod(lambda cls, cfg: ('runner', cfg)))
    cfg = Config(dict(x=1))
    cli.run(cfg, lambda runner: calls.append(runner))
    assert calls == [('runner', cfg)] + (['end'] if started else [])


def test_run_does_not_end_the_group_after_a_failure(monkeypatch) -> None:
    """Ending waits for every rank; after a failure it would hang."""
    ended = []
    monkeypatch.setattr(cli, 'init_cpu_process_group', lambda cfg: True)
    monkeypatch.setattr(cli, 'end_process_group', lambda: ended.append(1))
    monkeypatch.setattr(cli.Runner, 'from_cfg',
                        classmethod(lambda cls, cfg: None))

    def fail(runner):
        raise RuntimeError('loss is nan')

    with pytest.raises(RuntimeError, match='loss is nan'):
        cli.run(Config({}), fail)
    assert ended == []


class _Init(nn.Module):
    """Logs like mmengine's per-parameter init log; can fail."""

    def __init__(self, fail: bool) -> None:
        super().__init__()
        self.fail = fail

    def init_weights(self) -> None:
        logger = MMLogger.get_current_instance()
        logger.info('Initialized by user-defined `init_weights`')
        logger.warning('a warning from init')
        if self.fail:
            raise RuntimeError('init failed')


@pytest.mark.parametrize('fail', [False, True])
def test_init_weights_quietly(fail: bool) -> None:
    logger = MMLogger.get_current_instance()
    level = logger.level
    seen: List[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    try:
        if fail:
            with pytest.raises(RuntimeError, match='init failed'):
                cli.init_weights_quietly(_Init(fail))
        else:
            cli.init_weights_quietly(_Init(fail))
        assert seen == ['a warning from init']  # info dropped, warnings kept
        assert logger.level == level            # and the level is back
        logger.info('after')
        assert seen[-1] == 'after'
    finally:
        logger.removeHandler(handler)
