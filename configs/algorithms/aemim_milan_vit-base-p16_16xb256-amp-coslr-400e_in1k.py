# AEMIM on MILAN (CLIP ViT-B/16 target, attention-guided mask), ViT-B.
#
# mmpretrain's config milan/milan_vit-base-p16_16xb256-amp-coslr-400e_in1k.py,
# wrapped with the paper's standard AEMIM settings (../_base_/aemim.py), with
# one fix of an upstream defect: the upstream config leaves its
# MILANPretrainDecoder at the default embed_dim=1024 (ViT-L's width) under a
# 768-wide ViT-B encoder, so plain MILAN from it fails at its first step
# ("mat1 and mat2 shapes cannot be multiplied (..x768 and 1024x512)"); here
# the decoder takes the encoder's 768 features. What the target and the mask
# are, and which checkpoints the algorithm needs: docs/algorithms.md.
_base_ = [
    'mmpretrain::milan/milan_vit-base-p16_16xb256-amp-coslr-400e_in1k.py',
    '../_base_/aemim.py'
]

# the paper's standard AEMIM settings (../_base_/aemim.py) around the
# upstream model, its decoder taking the encoder's 768 features (the upstream
# defect above)
model = dict(_base_.pop('aemim_wrapper'), _delete_=True,
             algorithm=dict(_base_.model,
                            neck=dict(_base_.model.neck, embed_dim=768)))

# mmpretrain:: configs put a `_scope_` key into collate_fn; default_collate
# rejects it
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))

# the upstream config's find_unused_parameters=True (parameters that get no
# gradient: the frozen target generator, unused norms), kept under AEMIM's
# DDP wrapper
model_wrapper_cfg = dict(find_unused_parameters=True)

# Automatic resume, as in the upstream config: a run whose work directory
# holds a checkpoint continues from the latest one, and a finished run trains
# nothing more. Start a new run in a new --work-dir, or pass
# `--cfg-options resume=False`.
resume = True
