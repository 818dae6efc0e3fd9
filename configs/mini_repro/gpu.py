# Mini-reproduction preset `gpu`: the real ViT-T/4 on all of CIFAR-10, one GPU.
#
#   python tools/mini_repro.py --preset gpu --out-dir work_dirs/mini_repro_gpu
#
# 100 pre-training epochs of each method (the configs' 200-epoch schedules
# shortened, warm-up scaled with them), 3 seeds, the full fine-tuning (50
# epochs) and linear-probe (30 epochs) recipes of configs/finetune and
# configs/linear_probe with shortened schedules, evaluation on the full test
# split (corruptions: 1,000 images, FGSM/PGD-10: 2,000 images). MAE is also
# re-trained for the epoch budget whose wall time equals Fast AEMIM's and
# AEMIM's pre-training (equal wall time). Keys: see docs/mini_repro.md.
preset_name = 'gpu'
smoke = False
methods = ['mae', 'fast_aemim', 'aemim']
seeds = [0, 1, 2]
data = dict(root=None, train_per_class=None, test_per_class=None)
model = dict(encoder_layers=None, decoder_depth=None)
pretrain = dict(epochs=100, warmup_epochs=5, batch_size=512, num_workers=8,
                checkpoint_interval=10, log_interval=50, amp=False)
equal_time = dict(targets=['fast_aemim', 'aemim'])
finetune = dict(epochs=50, warmup_epochs=5, batch_size=512, num_workers=8,
                log_interval=50)
linprobe = dict(epochs=30, warmup_epochs=3, batch_size=512, num_workers=8,
                log_interval=50)
evaluate = dict(
    batch_size=500,
    # 2: a loader is started for each of the 95 corruption x severity sets
    num_workers=2,
    robustness_on=['finetune', 'linprobe'],
    corruption=dict(per_class=100, corruptions=None,
                    severities=[1, 2, 3, 4, 5]),
    adversarial=dict(num_samples=2000, fgsm_eps=[1, 2, 4, 8],
                     pgd_eps=[1, 2, 4, 8], pgd_steps=10, batch_size=500))
