# The runtime of the survey's CIFAR-10 configs: mmpretrain's, with the
# plug-in (survey.py), checkpoints every 10 epochs (the last 3 kept), a log
# line every 50 iterations and a fixed seed.
_base_ = ['mmpretrain::_base_/default_runtime.py', './survey.py']

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))

randomness = dict(seed=0, diff_rank_seed=True)
