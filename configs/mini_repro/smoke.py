# Mini-reproduction preset `smoke`: the whole pipeline on a CPU in minutes.
#
#   python tools/mini_repro.py --preset smoke \
#       --out-dir work_dirs/mini_repro_smoke
#
# THE NUMBERS OF THIS PRESET SAY NOTHING ABOUT AEMIM: a few hundred images,
# a 2-block ViT-T/4 (not the 12-block one), a couple of epochs. It exists to
# check that every stage runs and that the table / plots are produced
# (tests/test_mini_repro.py runs it in CI). Keys: see docs/mini_repro.md.
preset_name = 'smoke'
smoke = True
methods = ['mae', 'fast_aemim', 'aemim']
seeds = [0, 1]
# `root`: prepared CIFAR-10 (train/<class>/, test/<class>/); None:
# $CIFAR10_ROOT or data/cifar10 (extracted by tools/prepare_cifar10.py when
# missing).
# `*_per_class`: first N images of each class (sorted names); None: all.
data = dict(root=None, train_per_class=20, test_per_class=10)
# ViT-T/4 shape (192 dims, 3 heads, MLP 768) with fewer blocks; None: the
# configs' 12 encoder / 4 decoder blocks.
model = dict(encoder_layers=2, decoder_depth=1)
pretrain = dict(epochs=2, warmup_epochs=0, batch_size=50, num_workers=0,
                checkpoint_interval=1, log_interval=2, amp=False)
# MAE re-trained, with its full schedule, for the number of epochs whose
# wall time matches each target's pre-training (see docs/mini_repro.md).
equal_time = dict(targets=['fast_aemim', 'aemim'])
finetune = dict(epochs=1, warmup_epochs=0, batch_size=50, num_workers=0,
                log_interval=2)
linprobe = dict(epochs=1, warmup_epochs=0, batch_size=50, num_workers=0,
                log_interval=2)
evaluate = dict(
    batch_size=100,
    num_workers=0,
    # which classifiers get the corruption + FGSM/PGD evaluation (clean
    # top-1 is measured for both)
    robustness_on=['finetune'],
    corruption=dict(per_class=2,
                    corruptions=['gaussian_noise', 'defocus_blur',
                                 'contrast'],
                    severities=[1, 5]),
    adversarial=dict(num_samples=20, fgsm_eps=[1, 2, 4, 8],
                     pgd_eps=[1, 2, 4, 8], pgd_steps=10, batch_size=20))
