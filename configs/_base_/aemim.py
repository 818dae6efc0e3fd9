# The paper's standard AEMIM settings (Table 1), stated once. Every AEMIM
# config that wraps a base config's model inherits this piece (directly, or
# through aemim_explicit.py) and states only what it changes:
#   eps 2/255 (0-255 pixel units), T = 2 PGD steps, L2 feature distance,
#   LayerNorm adapters, loss ratio (lambda) 0.5, adversarial ratio
#   (alpha) 100 %.
# The piece also registers the plug-in (`custom_imports`) and selects AEMIM's
# clean-first DDP step whatever launches the run (aemim_ddp.py).
#
# How a config uses it: the settings are taken out of the merged base (so
# that `aemim_wrapper` is not a key of the final config) and the base
# config's model, the unchanged mmpretrain algorithm, becomes the wrapper's
# `algorithm` (`{{_base_.model}}` is mmengine's reference to a variable of the
# base config), e.g. in configs/algorithms/:
#
#   _base_ = ['mmpretrain::mae/mae_hivit-base-p16_8xb512-amp-coslr-400e_in1k.py',
#             '../_base_/aemim.py']
#   model = dict(_base_.pop('aemim_wrapper'), _delete_=True,
#                algorithm={{_base_.model}})
#
# A config that inherits such a config merges its changes into `model` as
# usual, e.g. Fast AEMIM: `model = dict(attack=dict(steps=1), adv_ratio=0.25)`.
_base_ = ['./aemim_ddp.py']

custom_imports = dict(imports=['aemim_mm'], allow_failed_imports=False)

aemim_wrapper = dict(
    type='AdversarialMIMWrapper',
    attack=dict(type='FeatureDistancePGD', eps=2, steps=2, distance='l2'),
    adapter='ln',
    loss_ratio=0.5,
    adv_ratio=1.0)
