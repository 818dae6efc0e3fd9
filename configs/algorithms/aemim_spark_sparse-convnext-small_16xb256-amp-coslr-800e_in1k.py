# AEMIM on SparK (pixel target, sparse convolutions), ConvNeXt-S.
#
# mmpretrain's config
# spark/spark_sparse-convnext-small_16xb256-amp-coslr-800e_in1k.py,
# unchanged, wrapped with the paper's standard AEMIM settings
# (../_base_/aemim.py), except the adapters: 'norm' splits both kinds of
# norm of this model, the sparse LayerNorms of the encoder and of SparK's
# enc_dec_norms ('ln') and the BatchNorms (SyncBN) of the decoder ('bn').
# What the target and the mask are: docs/algorithms.md.
_base_ = [
    'mmpretrain::spark/spark_sparse-convnext-small_16xb256-amp-coslr-800e_in1k.py',
    '../_base_/aemim.py'
]

# the paper's standard AEMIM settings (../_base_/aemim.py) around the
# upstream model, with LayerNorm and BatchNorm adapters
model = dict(_base_.pop('aemim_wrapper'), _delete_=True,
             algorithm={{_base_.model}}, adapter='norm')

# mmpretrain:: configs put a `_scope_` key into collate_fn; default_collate
# rejects it
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
