"""The literature's robustness evaluation: PGD-20 and AutoAttack's stages
(aemim_mm/evaluation/robust_accuracy.py), randomized-smoothing
certification (certify.py) and RUSH's noisy fine-tuning preprocessor, on
classifiers whose answer is known by construction (CPU, seconds)."""
import math

import numpy as np
import pytest
import torch
from mmpretrain.models import ClsDataPreprocessor
from mmpretrain.structures import DataSample
from scipy.stats import norm
from torch import nn
from torch.testing import assert_close

from aemim_mm.evaluation import certify as cert
from aemim_mm.evaluation import robust_accuracy as ra
from aemim_mm.models import GaussianNoiseClsDataPreprocessor

#: A quick AutoAttack for the tests (the standard one: 100, 9, 5000).
QUICK = ra.AutoAttackSettings(iters=10, targets=2, square_queries=40,
                              pgd_steps=5)
SIZE = 8


class PixelRule(nn.Module):
    """An mmpretrain-like classifier (``data_preprocessor``, ``mode=
    'tensor'``) whose logits are a rule of its 0-255 pixels.

    ``rule``: ``'brightness'``: 2 classes (and an unreachable third) by
    the mean pixel against 127.5
    (an eps-bounded change moves the mean by at most eps: robust by
    construction where the mean is far from the threshold);
    ``'one_pixel'``: the same by one pixel against 127.5, times ``scale``
    (any change of that pixel across the threshold flips it); ``'constant'``: 3
    classes, the same logits for every input (nothing an attack does
    changes the answer); ``'cnn'``: a small random ConvNet, 3 classes.
    """

    def __init__(self, rule: str, scale: float = 1.0) -> None:
        super().__init__()
        self.rule, self.scale = rule, scale
        self.data_preprocessor = ClsDataPreprocessor()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * SIZE * SIZE, 3)
        self.bias = nn.Parameter(torch.tensor([0.0, 1.0, -1.0]))

    def forward(self, inputs: torch.Tensor, mode: str = 'tensor'):
        assert mode == 'tensor'
        if self.rule == 'brightness':
            score = (inputs.mean((1, 2, 3)) - 127.5) / 10
        elif self.rule == 'one_pixel':
            score = (inputs[:, 0, 0, 0] - 127.5) * self.scale
        elif self.rule == 'constant':
            return self.bias.expand(len(inputs), 3) + 0 * inputs.sum(
                (1, 2, 3))[:, None]
        else:
            feats = self.conv(inputs / 255.0 - 0.5).relu().flatten(1)
            return self.fc(feats)
        # a third class no image has and no input reaches: AutoAttack's
        # targeted DLR loss needs three
        return torch.stack([-score, score, torch.full_like(score, -1e3)],
                           dim=1)


def sample(image: np.ndarray, label: int) -> dict:
    """One item as mmpretrain's test pipeline gives it."""
    return dict(inputs=torch.from_numpy(image.astype(np.uint8)),
                data_samples=DataSample().set_gt_label(label))


def brightness_set(n: int = 6) -> list:
    """Dark (class 0) and bright (class 1) noisy images, means far from the
    threshold: 60 and 195."""
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        base = 60 if i % 2 == 0 else 195
        items.append(sample(base + rng.integers(-20, 21, (3, SIZE, SIZE)),
                            i % 2))
    return items


def one_pixel_set(n: int = 6) -> list:
    """Images whose pixel (0, 0, 0) is 1-2 levels from the threshold on the
    side of their label."""
    rng = np.random.default_rng(1)
    items = []
    for i in range(n):
        image = rng.integers(0, 256, (3, SIZE, SIZE))
        image[0, 0, 0] = 129 if i % 2 else 126
        items.append(sample(image, i % 2))
    return items


def random_set(n: int = 8, classes: int = 3) -> list:
    rng = np.random.default_rng(2)
    return [sample(rng.integers(0, 256, (3, SIZE, SIZE)), i % classes)
            for i in range(n)]


def evaluate(model, dataset, **kwargs) -> dict:
    kwargs.setdefault('settings', QUICK)
    return ra.evaluate_robust_accuracy(model, dataset, batch_size=4,
                                       num_workers=0, **kwargs)


# ---------------------------------------------------------------- options


@pytest.mark.parametrize('eps', [-1, 0, 256, math.nan, True, '8'])
def test_bad_eps_is_refused_naming_it(eps):
    with pytest.raises(ValueError, match=r'eps must be a number in \(0, 255'):
        ra.check_attack_options(eps, ['pgd20'])


@pytest.mark.parametrize('attacks', [['fgsm'], ['pgd20', 'aa'], []])
def test_unknown_attack_is_refused_naming_the_choices(attacks):
    with pytest.raises(ValueError, match=r"unknown attacks .*choose from "
                       r"\['pgd20', 'autoattack'\]"):
        ra.check_attack_options(8, attacks)


@pytest.mark.parametrize('field', ['iters', 'targets', 'square_queries',
                                   'pgd_steps'])
@pytest.mark.parametrize('value', [0, -3, 1.5])
def test_bad_autoattack_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=f'AutoAttackSettings.{field} must'):
        ra.AutoAttackSettings(**{field: value})


def test_bad_options_are_refused_before_any_work(monkeypatch):
    """The model is never run for a bad eps."""
    model = PixelRule('cnn')
    monkeypatch.setattr(model, 'forward', lambda *a, **k: 1 / 0)
    with pytest.raises(ValueError, match='eps must'):
        evaluate(model, random_set(), eps=-2)


# -------------------------------------------------------------- orderings


def test_robust_by_construction_keeps_its_accuracy():
    """Brightness far from the threshold: no eps-8 example exists."""
    result = evaluate(PixelRule('brightness'), brightness_set(), eps=8)
    assert result['clean_acc'] == 100.0
    assert result['pgd20_acc'] == result['autoattack_acc'] == 100.0
    assert list(result['autoattack_stages'].values()) == [100.0] * 5


def test_constant_classifier_cannot_be_attacked():
    result = evaluate(PixelRule('constant'), random_set(), eps=8)
    # class 1 always: the images labelled 1 (3 of 8) are right
    assert result['clean_acc'] == result['pgd20_acc'] == \
        result['autoattack_acc'] == pytest.approx(100 * 3 / 8)


def test_trivially_vulnerable_classifier_loses_everything():
    result = evaluate(PixelRule('one_pixel'), one_pixel_set(), eps=8)
    assert result['clean_acc'] == 100.0
    assert result['pgd20_acc'] == 0.0
    assert result['autoattack_acc'] == 0.0
    # the first stage (APGD-CE) already breaks every image
    assert result['autoattack_stages']['apgd-ce'] == 0.0


def test_autoattack_sees_through_a_saturated_cross_entropy():
    """Logits 100 times larger: the cross-entropy's gradient underflows in
    float32 on correctly classified images (gradient masking), so PGD-20
    leaves images standing that the scale-free DLR loss of APGD-T breaks:
    the reason the literature reports AutoAttack."""
    result = evaluate(PixelRule('one_pixel', scale=100.0), one_pixel_set(),
                      eps=8)
    assert result['clean_acc'] == 100.0
    assert result['pgd20_acc'] > 0
    assert result['autoattack_stages']['apgd-ce'] > 0
    assert result['autoattack_acc'] == 0.0


def test_autoattack_at_most_pgd20_at_most_clean_inside_the_ball():
    result = evaluate(PixelRule('cnn'), random_set(), eps=8)
    assert result['autoattack_acc'] <= result['pgd20_acc'] <= \
        result['clean_acc']
    assert result['autoattack_acc'] < result['clean_acc']    # it attacks
    stages = list(result['autoattack_stages'].values())
    assert stages == sorted(stages, reverse=True)    # stages only remove
    assert 0 < result['max_linf_255'] <= 8 * (1 + ra.BALL_RTOL)
    assert (result['dataset'], result['threat_model'], result['eps'],
            result['n_examples']) == ('cifar10', 'Linf', '8/255', 8)
    assert result['settings'] == dict(iters=10, targets=2,
                                      square_queries=40, pgd_steps=5)
    assert result['attack_library'].startswith('ART ')


def test_autoattack_examples_stay_in_the_ball_and_the_box():
    """Every stage's examples, broken or not, within eps and [0, 1]."""
    model = ra.PixelSpaceClassifier(PixelRule('cnn'), 1.0)
    x = np.stack([s['inputs'].numpy() for s in random_set()]).astype(
        np.float32) / 255
    y = np.array([int(s['data_samples'].gt_label[0]) for s in random_set()])
    estimator = ra.art_classifier(model, 3, x.shape[1:], 'cpu')
    eps = 8 / 255
    x_adv, after = ra.autoattack(estimator, x, y, eps, QUICK, batch_size=8)
    assert np.abs(x_adv - x).max() <= eps * (1 + ra.BALL_RTOL)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert list(after) == ['clean', *ra.AUTOATTACK_STAGES]
    pred = estimator.predict(x_adv).argmax(1)
    assert_close(torch.from_numpy(pred == y), torch.from_numpy(
        after['square']))
    x_pgd = ra.pgd20(estimator, x, y, eps, steps=3, batch_size=8)
    assert ra.check_examples(x, x_pgd, eps) <= eps * (1 + ra.BALL_RTOL)


def test_fab_t_breaks_exactly_the_images_within_eps_of_a_linear_boundary():
    """A linear classifier: image i's nearest L-inf example towards class
    t is at (z_y - z_t) / ||w_y - w_t||_1 (the box does not bind near
    0.5), and FAB, a minimum-norm attack, finds it: broken iff that
    distance is below eps (distances within 25 % of eps are not judged).
    Examples are inside the ball, only broken ones are replaced, and the
    caller's random stream is left as it was."""
    gen = torch.Generator().manual_seed(0)
    model = nn.Linear(3 * SIZE * SIZE, 3)
    with torch.no_grad():
        model.weight.copy_(torch.randn(3, 3 * SIZE * SIZE, generator=gen))
        model.bias.copy_(-0.5 * model.weight.sum(1))   # 0 at grey
    flat = nn.Sequential(nn.Flatten(), model)
    # margins spread over two decades around grey
    scale = torch.logspace(-3, -1, 40)[:, None, None, None]
    x = 0.5 + scale * (torch.rand(40, 3, SIZE, SIZE, generator=gen) - 0.5)
    with torch.no_grad():
        z = flat(x)
    y = z.argmax(1)
    w = model.weight.detach()
    dist = torch.stack([
        (z[i, y[i]] - z[i, t]) / (w[y[i]] - w[t]).abs().sum()
        for i in range(len(x)) for t in range(3) if t != y[i]]).view(-1, 2)
    dist = dist.amin(1)
    eps = float(dist.median())
    x_np, y_np = x.numpy(), y.numpy()
    before = torch.get_rng_state()
    x_adv, robust = ra.fab_t(flat, x_np, y_np, x_np.copy(),
                             np.ones(len(x), bool), eps, QUICK, 3)
    assert_close(torch.get_rng_state(), before)
    judged = ((dist < 0.8 * eps) | (dist > 1.25 * eps)).numpy()
    assert judged.sum() >= 20
    assert_close(torch.from_numpy(robust[judged]),
                 (dist >= eps)[torch.from_numpy(judged)])
    assert ra.check_examples(x_np, x_adv, eps) <= eps * (1 + ra.BALL_RTOL)
    assert_close(torch.from_numpy(x_adv[robust]),
                 torch.from_numpy(x_np[robust]))
    pred = flat(torch.from_numpy(x_adv)).argmax(1).numpy()
    assert (pred[~robust] != y_np[~robust]).all()


def test_an_example_outside_the_budget_is_an_error():
    x = np.full((1, 3, 2, 2), 0.5, np.float32)
    with pytest.raises(RuntimeError, match='left the budget'):
        ra.check_examples(x, x + 0.1, 8 / 255)
    with pytest.raises(RuntimeError, match='left the budget'):
        ra.check_examples(x * 0, x * 0 - 0.01, 8 / 255)
    with pytest.raises(RuntimeError, match='left the budget'):
        ra.check_examples(x, x * np.nan, 8 / 255)


# ---------------------------------------------------------------- resume


def test_resume_recomputes_no_finished_batch(tmp_path, monkeypatch):
    state = tmp_path / 'state.jsonl'
    first = evaluate(PixelRule('cnn'), random_set(), eps=8,
                     state_file=str(state), checkpoint='a.pth')
    assert len(state.read_text().splitlines()) == 2      # 8 images / 4
    # stopped after one batch: the second run attacks only the other one
    state.write_text(state.read_text().splitlines()[0] + '\n')
    calls = []
    pgd = ra.pgd20
    monkeypatch.setattr(ra, 'pgd20', lambda *a, **k: calls.append(1) or
                        pgd(*a, **k))
    again = evaluate(PixelRule('cnn'), random_set(), eps=8,
                     state_file=str(state), checkpoint='a.pth')
    assert len(calls) == 1
    assert again == first             # the same draws as uninterrupted
    monkeypatch.setattr(ra, 'pgd20', lambda *a, **k: 1 / 0)
    assert evaluate(PixelRule('cnn'), random_set(), eps=8,
                    state_file=str(state), checkpoint='a.pth') == first
    with pytest.raises(ValueError, match='holds results of other settings'):
        evaluate(PixelRule('cnn'), random_set(), eps=4,
                 state_file=str(state), checkpoint='a.pth')


# ---------------------------------------------------------- certification


def linear_model(w: torch.Tensor, b: float):
    """Pixels -> 2 logits: class 1 where ``w . x + b > 0``."""
    def model(x: torch.Tensor) -> torch.Tensor:
        score = x.flatten(1) @ w + b
        return torch.stack([-score, score], dim=1)
    return model


def test_constant_classifier_radius_is_the_formula():
    """All n votes for one class: pA_low = alpha^(1/n) (Clopper-Pearson)."""
    sigma, n, alpha = 0.5, 1000, 0.001
    c = cert.certify(lambda x: torch.tensor([[0.0, 1.0]]).expand(len(x), 2),
                     torch.zeros(3, 4, 4), sigma, n0=10, n=n, alpha=alpha,
                     batch_size=300)
    assert (c.prediction, c.count) == (1, n)
    assert c.p_lower == pytest.approx(alpha ** (1 / n), rel=1e-9)
    assert c.radius == pytest.approx(sigma * norm.ppf(alpha ** (1 / n)),
                                     rel=1e-9)


def test_linear_classifier_radius_is_its_margin_from_below():
    """For a linear classifier the smoothed one's exact radius is the L2
    distance to the boundary (Cohen et al.): the certificate is below it,
    close for large n, and equals sigma * Phi^-1(pA_low) of its votes."""
    torch.manual_seed(0)
    w = torch.randn(3 * 4 * 4)
    w = w / w.norm()
    x = torch.rand(3, 4, 4)
    distance = 0.3
    b = distance - float(x.flatten() @ w)       # class 1, 0.3 from it
    sigma, n, alpha = 0.25, 20000, 0.001
    c = cert.certify(linear_model(w, b), x, sigma, n0=100, n=n, alpha=alpha,
                     batch_size=5000)
    assert c.prediction == 1
    assert c.radius == pytest.approx(
        sigma * norm.ppf(cert.lower_confidence_bound(c.count, n, alpha)),
        rel=1e-12)
    assert 0.9 * distance < c.radius < distance
    # its votes are what pA = Phi(distance / sigma) gives
    assert c.count / n == pytest.approx(norm.cdf(distance / sigma), abs=0.01)


def test_on_the_boundary_it_abstains():
    w = torch.ones(3 * 4 * 4) / math.sqrt(48)
    x = torch.full((3, 4, 4), 0.5)
    c = cert.certify(linear_model(w, -float(x.flatten() @ w)), x, 0.25,
                     n0=100, n=2000, alpha=0.001, batch_size=1000)
    assert c.prediction == cert.ABSTAIN and c.radius == 0.0
    assert c.p_lower < 0.5


def test_certified_accuracy_counts_abstentions_and_errors_as_failures():
    radii = [0.0, 0.3, 0.6, 1.0, 0.8]
    correct = [False, True, True, True, False]  # 0: abstained; 4: wrong
    assert cert.certified_accuracy(radii, correct, [0, 0.5, 0.7, 1.0, 2]) \
        == [60.0, 40.0, 20.0, 20.0, 0.0]


@pytest.mark.parametrize('kwargs,match', [
    (dict(sigma=0), 'sigma must be a number > 0'),
    (dict(sigma=-0.25), 'sigma must'),
    (dict(n0=0), 'n0 must be an int >= 1'),
    (dict(n=2.5), 'n must be an int >= 1'),
    (dict(alpha=0.5), r'alpha must be in \(0, 0.5\)'),
    (dict(batch_size=0), 'batch_size must'),
])
def test_bad_certify_options_are_refused(kwargs, match):
    options = dict(sigma=0.25, n0=100, n=1000, alpha=0.001, batch_size=10)
    options.update(kwargs)
    with pytest.raises(ValueError, match=match):
        cert.check_certify_options(**options)


# ------------------------------------------------- RUSH's noisy fine-tuning


def test_noise_preprocessor_adds_sigma_noise_when_training_only():
    mean, std = [125.0, 120.0, 110.0], [50.0, 60.0, 40.0]
    noisy = GaussianNoiseClsDataPreprocessor(sigma=0.25, mean=mean, std=std)
    plain = ClsDataPreprocessor(mean=mean, std=std)
    data = dict(inputs=[torch.full((3, 64, 64), 100, dtype=torch.uint8)
                        for _ in range(8)],
                data_samples=[DataSample() for _ in range(8)])
    clean = plain(data, False)['inputs']
    assert_close(noisy(data, False)['inputs'], clean)
    torch.manual_seed(0)
    out = noisy(data, True)['inputs']
    spread = (out - plain(data, True)['inputs']).transpose(0, 1).flatten(1)
    assert_close(spread.std(1), 255 * 0.25 / torch.tensor(std),
                 rtol=0.02, atol=0)
    assert spread.mean(1).abs().max() < 0.02


@pytest.mark.parametrize('sigma', [0, -1, math.inf, True])
def test_noise_preprocessor_refuses_a_bad_sigma(sigma):
    with pytest.raises(ValueError, match='sigma must be a number > 0'):
        GaussianNoiseClsDataPreprocessor(sigma=sigma)


def test_two_classes_skip_apgd_t():
    """The DLR loss needs a third logit: APGD-T is skipped, the rest run."""
    model = ra.PixelSpaceClassifier(PixelRule('one_pixel'), 1.0)
    two = lambda x: model(x)[:, :2]     # noqa: E731
    items = one_pixel_set()
    x = np.stack([s['inputs'].numpy() for s in items]).astype(
        np.float32) / 255
    y = np.array([int(s['data_samples'].gt_label[0]) for s in items])

    class Two(nn.Module):
        def forward(self, pixels):
            return two(pixels)

    estimator = ra.art_classifier(Two(), 2, x.shape[1:], 'cpu')
    _, after = ra.autoattack(estimator, x, y, 8 / 255, QUICK, batch_size=8)
    assert not after['apgd-ce'].any()
    assert_close(torch.from_numpy(after['apgd-t']),
                 torch.from_numpy(after['apgd-ce']))


def test_a_batch_with_no_correct_image_is_not_attacked():
    """Every image misclassified before any attack: each stage keeps 0."""
    items = [sample(s['inputs'].numpy(),
                    1 - int(s['data_samples'].gt_label[0]))
             for s in brightness_set()]
    result = evaluate(PixelRule('brightness'), items, eps=8)
    assert result['clean_acc'] == result['pgd20_acc'] == 0.0
    assert set(result['autoattack_stages'].values()) == {0.0}
