# AEMIM on SparK (pixel target, sparse convolutions), ResNet-50.
#
# mmpretrain's config spark/spark_sparse-resnet50_8xb512-amp-coslr-800e_in1k.py,
# unchanged, wrapped with the paper's standard AEMIM settings
# (../_base_/aemim.py), except the adapters: a ResNet has BatchNorms, not
# LayerNorms, so the adapters are AdvProp's split BatchNorms ('bn': each
# BatchNorm of the encoder, of SparK's enc_dec_norms and of the decoder gets
# adversarial affine parameters and running statistics). What the target and
# the mask are: docs/algorithms.md.
_base_ = [
    'mmpretrain::spark/spark_sparse-resnet50_8xb512-amp-coslr-800e_in1k.py',
    '../_base_/aemim.py'
]

# the paper's standard AEMIM settings (../_base_/aemim.py) around the
# upstream model, with split BatchNorm adapters
model = dict(_base_.pop('aemim_wrapper'), _delete_=True,
             algorithm={{_base_.model}}, adapter='bn')

# mmpretrain:: configs put a `_scope_` key into collate_fn; default_collate
# rejects it
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
