# AEMIM's training step under DDP, whatever launches the run (this
# repository's tools/train.py, an mm project's own tools/train.py,
# `mim train`, a slurm script).
#
# mmengine's default MMDistributedDataParallel runs the model's `loss()` in
# one forward and one backward. AEMIMDistributedDataParallel runs
# AdversarialMIMWrapper's clean-first step instead: the clean loss is
# backpropagated (without gradient synchronisation) before the adversarial
# graph is built, so the two graphs are never in memory together; the
# gradients are the same. One process without DDP ignores this setting and
# calls the wrapper's own train_step, which is clean-first too.
# The ADIOS configs (configs/survey/adios_*.py) inherit it too: the wrapper
# runs ADIOS's own two-optimiser train_step, which averages each step's
# gradients over the processes itself.
# More DDP options merge in, e.g.
# `model_wrapper_cfg = dict(find_unused_parameters=True)` in a child config.
model_wrapper_cfg = dict(
    type='AEMIMDistributedDataParallel', broadcast_buffers=False)
