"""Build a classifier from an mmpretrain config + checkpoint and score it.

The evaluation tools share these steps: build the config's model (an
mmpretrain ``ImageClassifier``), load the checkpoint (``weights_only=True``),
build a data set with the config's test pipeline, run ``model.test_step``
batch by batch and feed mmengine's ``Evaluator``.
"""
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.runner import load_checkpoint
from mmpretrain.registry import DATASETS, METRICS, MODELS
from torch.utils.data import DataLoader, Dataset

from .progress import Progress


def load_config(config: Union[str, Config],
                cfg_options: Optional[dict] = None) -> Config:
    """Read a config file (or take a ``Config``), with overrides applied.

    Raises:
        FileNotFoundError: If the config file does not exist.
    """
    if isinstance(config, Config):
        cfg = config
    else:
        if not osp.isfile(config):
            raise FileNotFoundError(f'config not found: {config}')
        cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def test_pipeline(cfg: Config) -> list:
    """The config's test pipeline (``test_dataloader.dataset.pipeline``).

    Raises:
        ValueError: If the config has none.
    """
    try:
        return list(cfg.test_dataloader.dataset.pipeline)
    except (AttributeError, KeyError, TypeError):
        pipeline = cfg.get('test_pipeline')
        if pipeline is None:
            raise ValueError(
                'the config has no test pipeline (test_dataloader.dataset.'
                'pipeline or test_pipeline): use a fine-tuning config')
        return list(pipeline)


class CheckpointMismatchError(ValueError):
    """A checkpoint whose tensors do not fit the config's model (another
    architecture, size or head)."""


def load_classifier(config: Union[str, Config], checkpoint: Optional[str],
                    device: Union[str, torch.device] = 'cpu',
                    cfg_options: Optional[dict] = None
                    ) -> Tuple[torch.nn.Module, Config]:
    """Build the config's model, load ``checkpoint``, put it in eval mode.

    Args:
        config: Config file or object; its ``model`` is an mmpretrain
            classifier (``ImageClassifier``).
        checkpoint: Checkpoint file (mmengine format or a bare state dict),
            read with ``torch.load(weights_only=True)``; ``None`` keeps the
            initial weights (tests only).
        device: Where the model runs.
        cfg_options: Config overrides.

    Returns:
        ``(model, cfg)``.

    Raises:
        FileNotFoundError: If the config or the checkpoint does not exist.
        CheckpointMismatchError: If the checkpoint's tensors do not load
            strictly into the model (the message names both).
    """
    import aemim_mm  # noqa: F401  (registration + checkpoint allow-list)

    cfg = load_config(config, cfg_options)
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    model_cfg = cfg.model
    if cfg.get('data_preprocessor') is not None:
        # as mmengine's Runner does: the top-level preprocessor (mean, std,
        # to_rgb) goes to the model, unless the model has its own
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    # built in the config's scope, whatever scope a detection config or
    # test left as mmengine's default
    model = MODELS.build(
        dict(model_cfg, _scope_=cfg.get('default_scope') or 'mmpretrain'))
    if checkpoint is not None:
        try:
            load_checkpoint(model, checkpoint, map_location='cpu',
                            strict=True, logger='current')
        except RuntimeError as e:
            backbone = model_cfg.get('backbone', {}).get('type', '?')
            detail = '; '.join(str(e).strip().splitlines()[:3])[:500]
            raise CheckpointMismatchError(
                f'checkpoint {checkpoint} does not fit the model of '
                f'{config if isinstance(config, str) else "the config"} '
                f'({model_cfg.get("type")}, backbone {backbone}): '
                f'{detail}') from e
    model.to(device).eval()
    return model, cfg


def build_dataset(dataset: Union[dict, Dataset], pipeline: Sequence[dict]):
    """Build a data set config with ``pipeline``, or pass a data set through.

    ``serialize_data`` defaults to ``False``: mmengine's serialisation runs a
    full ``gc.collect()`` per data set, whose cost grows with the process's
    objects and adds up over the 75 small ImageNet-C / CIFAR-10-C sets.
    """
    if isinstance(dataset, dict):
        cfg = dict(serialize_data=False, _scope_='mmpretrain')
        cfg.update(dataset)
        cfg['pipeline'] = list(pipeline)
        dataset = DATASETS.build(cfg)
    return dataset


def make_loader(dataset: Dataset, batch_size: int = 64,
                num_workers: int = 2) -> DataLoader:
    """A sequential loader with mmengine's ``pseudo_collate``."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False,
                      num_workers=num_workers, collate_fn=pseudo_collate,
                      persistent_workers=False)


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: Dataset,
             metrics: Union[dict, List[dict], list], name: str = 'eval',
             batch_size: int = 64, num_workers: int = 2,
             log_interval_s: float = 10.0) -> dict:
    """Run the model on ``dataset`` and return the metrics' results.

    Args:
        model: An mmpretrain classifier in eval mode.
        dataset: A built data set (with the test pipeline).
        metrics: mmengine metric config(s) or object(s).
        name: Shown in the progress lines.
        batch_size: Images per batch.
        num_workers: Data loading processes.
        log_interval_s: Least seconds between two progress lines.

    Returns:
        The evaluator's dict (e.g. ``{'accuracy/top1': 71.2}``).
    """
    model.eval()
    if not isinstance(metrics, (list, tuple)):
        metrics = [metrics]
    evaluator = Evaluator([
        METRICS.build(dict(m, _scope_='mmpretrain')) if isinstance(m, dict)
        else m for m in metrics
    ])
    evaluator.dataset_meta = getattr(dataset, 'metainfo', None)
    loader = make_loader(dataset, batch_size, num_workers)
    progress = Progress(len(dataset), f'{name} (images)', log_interval_s)
    for batch in loader:
        outputs = model.test_step(batch)
        evaluator.process(data_samples=outputs, data_batch=batch)
        progress.step(len(outputs))
    return evaluator.evaluate(len(dataset))
