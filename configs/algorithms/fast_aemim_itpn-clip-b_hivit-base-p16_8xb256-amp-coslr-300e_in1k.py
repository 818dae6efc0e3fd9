# Fast AEMIM (paper Table 1: T = 1 PGD step, adversarial ratio 25 %; the
# rest the paper's standard, ../_base_/aemim.py) on the setting of
# aemim_itpn-clip-b_hivit-base-p16_8xb256-amp-coslr-300e_in1k.py.
#
# This encoder runs on every token (mask tokens in place), not on the
# visible quarter as MAE's does, so each attack step costs a full encoder
# pass; Fast AEMIM is the sensible default here.
_base_ = ['./aemim_itpn-clip-b_hivit-base-p16_8xb256-amp-coslr-300e_in1k.py']

model = dict(attack=dict(steps=1), adv_ratio=0.25)
