"""Paper 004's defences on a digits CNN."""

import pytest
import torch
import torch.nn.functional as F

import advx
from advx.defense import DefendedClassifier, build_defended
from advx.testing import check_defense, digits_model
from advx_counteract.counteract import counter_perturbation, draw_labels


@pytest.fixture(scope="module")
def digits():
    model, data = digits_model()
    return model, data.x_test[:64].clone(), data.y_test[:64].clone(), data


def ctx(data):
    return {"train_x": data.x_train, "train_y": data.y_train, "num_classes": 10}


def test_labels_are_distinct_and_never_the_prediction():
    pred = torch.randint(0, 10, (500,))
    labels = draw_labels(pred, 10, 9, torch.Generator().manual_seed(0))
    assert labels.shape == (500, 9)
    assert (labels != pred[:, None]).all()
    assert all(len(set(r.tolist())) == 9 for r in labels)
    few = draw_labels(pred, 10, 3, torch.Generator().manual_seed(1))
    assert (few != pred[:, None]).all() and len(torch.unique(few)) == 10  # all non-predicted labels get drawn


def test_counter_perturbation_stays_within_mu(digits):
    model, x, _, data = digits
    out = advx.create("inference_defense", "counteract", mu=0.02, alpha=0.05).transform(
        x, model, torch.Generator().manual_seed(0), ctx(data))
    assert (out - x).abs().max() <= 0.02 + 1e-6
    assert out.min() >= 0 and out.max() <= 1


def test_targeted_and_untargeted_steps_have_opposite_signs(digits):
    model, x, _, _ = digits
    labels = draw_labels(model(x).argmax(1), 10, 1, torch.Generator().manual_seed(0))
    t = counter_perturbation(model, x, labels, 0.01, 1.0, targeted=True)
    u = counter_perturbation(model, x, labels, 0.01, 1.0, targeted=False)
    assert torch.equal(t, -u) and t.abs().max() > 0


def test_targeted_step_raises_the_chosen_labels_probability(digits):
    model, x, _, _ = digits
    labels = draw_labels(model(x).argmax(1), 10, 1, torch.Generator().manual_seed(0))
    delta = counter_perturbation(model, x, labels, 0.05, 1.0, targeted=True)
    with torch.no_grad():
        before = model(x).softmax(1).gather(1, labels).mean()
        after = model((x + delta).clamp(0, 1)).softmax(1).gather(1, labels).mean()
    assert after > before


def test_all_labels_use_one_batched_pass(digits):
    model, x, _, data = digits
    calls = []
    h = model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    advx.create("inference_defense", "counteract").transform(x, model, torch.Generator().manual_seed(0), ctx(data))
    h.remove()
    assert calls == [len(x), 9 * len(x)]  # prediction, then all 9 labels at once


def test_repeats_average_probabilities_in_one_batched_pass(digits):
    """The 8 draws run as one pass over x repeated 8 times (each copy its own draw); split into
    one draw per pass (max_batch = the batch) they give the same average, draw for draw, and an
    image gets the same draws whatever batch it arrives in (draws keyed by its content)."""
    model, x, _, data = digits
    guo = advx.create("inference_defense", "crop-rescale")
    many = DefendedClassifier(model, [guo], repeats=8, context=ctx(data))
    many.max_batch = 8 * len(x)  # all draws in one pass (CUDA's default; a CPU loops by default)
    calls = []
    hook = model.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    with torch.no_grad():
        many.reseed(3)
        avg = many(x).exp()
        assert calls == [8 * len(x)]  # one forward for all draws
        looped = DefendedClassifier(model, [guo], repeats=8, context=ctx(data))
        looped.max_batch = len(x)
        looped.reseed(3)
        split = looped(x).exp()
        alone = torch.cat([looped(x[i:i + 1]).exp() for i in range(3)])  # one image per batch
        one = DefendedClassifier(model, [guo], repeats=1, context=ctx(data))
        one.reseed(3)
        single = one(x).softmax(1)
        one.reseed(4)
        other_seed = one(x).softmax(1)
    hook.remove()
    assert torch.allclose(avg, split, atol=1e-5)
    assert torch.allclose(alone, split[:3], atol=1e-5)
    assert not torch.allclose(avg, single, atol=1e-3)  # 8 draws average to something else than one
    assert not torch.allclose(single, other_seed, atol=1e-3)  # the seed moves the draws


def test_chain_order_holds_and_counteract_sees_the_undefended_model(digits):
    model, x, _, data = digits
    order = []

    class Probe(type(advx.create("inference_defense", "crop-rescale"))):
        def transform(self, x, m, g, c):
            order.append((self.min_scale, m is model))
            return x

    a, b = Probe(min_scale=0.5), Probe(min_scale=0.75)
    build_defended(model, [a, b], context=ctx(data))(x)
    assert order == [(0.5, True), (0.75, True)]


@pytest.mark.parametrize("name,params", [("counteract", {}), ("counteract", {"mode": "untargeted"}),
                                         ("random-resize-pad", {}), ("crop-rescale", {}),
                                         ("mixup-inference", {"lam": 0.6}), ("gaussian-noise", {}),
                                         ("random-rotation", {})])
def test_contract(digits, name, params):
    model, x, _, data = digits
    d = advx.create("inference_defense", name, **params)
    check_defense(d, model, x, 10, ctx(data))
    out = build_defended(model, [d], repeats=2, context=ctx(data))(x)
    assert out.shape == (len(x), 10)


def test_mixup_inference_mixes_with_other_labels_only(digits):
    model, x, _, data = digits
    mi = advx.create("inference_defense", "mixup-inference", lam=0.5)
    g = torch.Generator().manual_seed(0)
    out = mi.transform(x, model, g, ctx(data))
    xs = (out - 0.5 * x) / 0.5  # the clean partner each sample was mixed with
    pool = data.x_train.flatten(1)
    idx = torch.cdist(xs.flatten(1), pool).argmin(1)
    assert (data.y_train[idx] != model(x).argmax(1)).all()


def test_untargeted_counteract_costs_less_clean_accuracy_than_targeted(digits):
    """Paper 004 Table 4: targeted counter-steps cost more clean accuracy than untargeted ones."""
    model, _, _, data = digits
    x, y = data.x_test, data.y_test

    def acc(mode):
        d = build_defended(model, [advx.create("inference_defense", "counteract", mode=mode, alpha=0.1, mu=0.2)],
                           context=ctx(data))
        with torch.no_grad():
            return (d(x).argmax(1) == y).float().mean().item()

    with torch.no_grad():
        base = (model(x).argmax(1) == y).float().mean().item()
    assert acc("untargeted") >= acc("targeted")
    assert acc("untargeted") <= base + 0.01


@pytest.mark.parametrize("name", ["random-resize-pad", "crop-rescale", "gaussian-noise", "random-rotation"])
def test_random_transforms_draw_a_window_per_image(name):
    """Xie et al. and Guo et al. randomise each image; one window for the whole batch would make a
    10-repeat average over a test set a 10-window average (high variance between seeds)."""
    x = torch.rand(1, 1, 28, 28).expand(64, 1, 28, 28).contiguous()  # 64 copies of one image
    out = advx.create("inference_defense", name).transform(x, None, torch.Generator().manual_seed(0), {})
    distinct = {tuple(o.flatten().round(decimals=5).tolist()) for o in out}
    assert len(distinct) > 16
    again = advx.create("inference_defense", name).transform(x, None, torch.Generator().manual_seed(0), {})
    assert torch.equal(out, again)


def test_resize_pad_equals_resize_then_pad_for_a_given_window():
    from advx_counteract.randomized import affine_resample

    x = torch.rand(1, 1, 28, 28)
    r, top, left = 22, 3, 5
    ref = F.pad(F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False),
                (left, 28 - r - left, top, 28 - r - top))
    one = torch.tensor([1.0])
    out = affine_resample(x, one * 28 / r, one * 28 / r, one * (28 - 2 * top - r) / r, one * (28 - 2 * left - r) / r)
    assert torch.allclose(out, ref, atol=1e-5)


def test_gaussian_noise_has_the_asked_spread_and_stays_in_pixels():
    x = torch.full((64, 1, 28, 28), 0.5)
    out = advx.create("inference_defense", "gaussian-noise", sigma=0.1).transform(x, None, torch.Generator().manual_seed(0), {})
    assert (out - x).std().item() == pytest.approx(0.1, rel=0.03)
    assert out.min() >= 0 and out.max() <= 1


def test_random_rotation_turns_each_image_within_the_range():
    x = torch.zeros(32, 1, 29, 29)
    x[:, :, 14, 14:] = 1.0  # a bar from the centre to the right edge
    out = advx.create("inference_defense", "random-rotation", max_degrees=30).transform(
        x, None, torch.Generator().manual_seed(0), {})
    ys, xs = torch.meshgrid(torch.arange(29.0) - 14, torch.arange(29.0) - 14, indexing="ij")
    w = out[:, 0]
    angle = torch.atan2((w * ys).sum((1, 2)), (w * xs).sum((1, 2))) * 180 / torch.pi  # the bar's mean direction
    assert angle.abs().max() <= 30 + 2 and angle.std() > 5  # within ±30°, and different per image
    same = advx.create("inference_defense", "random-rotation", max_degrees=1e-6).transform(x, None, None, {})
    assert torch.allclose(same, x, atol=1e-4)
