"""Exact savings (issue #48, item 1): when the evaluator says a fooling point is final, APGD and PGD drop
fooled samples from its batch. The robust set is the one the every-iteration run finds, at fewer
passes; called directly, or where points are scored elsewhere, nothing changes."""

import torch

import advx
from advx.attack_context import final_points
from advx.streams import SampleStreams, derive_key


class RowCounter(torch.nn.Module):
    """The network, counting the images it sees (a pass here is one image through the model)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.rows = net, 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.net(x)


def _attack(model, x, y, name, final, **kw):
    counted = RowCounter(model)
    g = SampleStreams.for_rows(derive_key(0, "digits", name), torch.arange(len(y)))  # the evaluator's streams
    with final_points(final):
        x_adv = advx.create("attack", name, **kw)(counted, x, y, generator=g)
    with torch.no_grad():
        robust = model(x_adv).argmax(1) == y
    return x_adv, robust, counted.rows


def test_apgd_ce_apgd_t_and_pgd_keep_the_robust_set_at_fewer_passes(digits):
    model, x, y = digits
    for name, kw in (("apgd", {"eps": 0.1, "steps": 40}), ("apgd-t", {"eps": 0.1, "steps": 20, "targets": 3}),
                     ("pgd", {"eps": 0.1, "steps": 20}), ("pgd", {"eps": 1.0, "steps": 20, "norm": "l2"})):
        full_x, full, full_rows = _attack(model, x, y, name, False, **kw)
        saved_x, saved, saved_rows = _attack(model, x, y, name, True, **kw)
        assert torch.equal(full, saved), name  # the same samples robust, sample for sample
        assert 0 < full.sum() < len(y)  # a test with something to save and something left
        assert saved_rows < 0.8 * full_rows, (name, saved_rows, full_rows)
        dist = (saved_x - x).flatten(1).norm(dim=1) if kw.get("norm") == "l2" else (saved_x - x).abs().flatten(1).amax(1)
        assert dist.max() <= kw["eps"] * (1 + 1e-5)  # the first fooling point is in the ball too


def test_called_directly_every_sample_runs_every_iteration(digits):
    model, x, y = digits
    kw = {"eps": 0.1, "steps": 20}
    direct = RowCounter(model)
    g = SampleStreams.for_rows(derive_key(0, "digits", "apgd"), torch.arange(len(y)))
    x_direct = advx.create("attack", "apgd", **kw)(direct, x, y, generator=g)
    x_full, _, rows = _attack(model, x, y, "apgd", False, **kw)
    assert torch.equal(x_direct, x_full) and direct.rows == rows == len(y) * (kw["steps"] + 1)
