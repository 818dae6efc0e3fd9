# SLF (standard linear fine-tuning) of a ViT-T/4 encoder on CIFAR-10 (AEMIM's
# and MAE's CIFAR-10 configs, configs/*_vit-t-p4_cifar10.py): the package's
# linear probe, unchanged (../linear_probe/vit-t-p4_cifar10_lp.py: frozen
# encoder, class token, BatchNorm neck, LARS 90 epochs). The literature's
# protocols are defined on ResNet-18 (./slf_resnet18_cifar10.py); the ViT
# versions keep each ViT recipe and change only what the protocol is.
#
#   python tools/train.py configs/eval/slf_vit-t-p4_cifar10.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=ENCODER.pth
_base_ = ['../linear_probe/vit-t-p4_cifar10_lp.py']
