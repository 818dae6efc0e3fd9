# Plain MAE+ on CIFAR-10 (ViT-T/4, 32 px, 200 epochs, batch 512 on one GPU):
# the baseline of the AdPE configs (adpe_mae-plus_*), which add the
# adversary and nothing else. MAE+ is MAE with the mask tokens in the encoder
# (_base_/models/mae-plus_vit-t-p4_32px.py); schedule, data and runtime are
# those of configs/mae_vit-t-p4_cifar10.py.
#
#   tools/dist_train.sh configs/survey/mae-plus_vit-t-p4_cifar10.py 1
_base_ = [
    '../_base_/models/mae-plus_vit-t-p4_32px.py',
    '../_base_/datasets/cifar10_mim.py',
    '../_base_/schedules/cifar10_mim_200e.py',
    './_base_/runtime.py',
]

model = dict(data_preprocessor={{_base_.data_preprocessor}})

# no attack, so no per-sample seeds (survey runtime's SampleSeedHook)
custom_hooks = []
