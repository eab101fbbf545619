"""AutoAttack's fast version (issue #48, item 2): MALT-ranked targets instead of AutoAttack's nine,
and a built-in check on a subsample against the standard ensemble that catches a crippled run."""

import warnings

import pytest
import torch

import advx
from advx import ledger
from advx.evaluation.counting import CountingModel
from advx.evaluation.verdict import binomial_upper
from advx_attacks.apgd_targeted import malt_classes
from advx.testing import LinearModel

SHRUNK = dict(eps=0.1, steps=20, queries=500)  # the digits CNN keeps about 40 % robust at eps 0.1


def attack(model, x, y, **kw):
    """(robust mask, per-sample log, passes spent, warnings raised) of AutoAttack on the counted model."""
    counted = CountingModel(model)
    with ledger.tally(len(x)) as spent, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x_adv, log = advx.create("attack", "autoattack", **kw).attack_with_log(counted, x, y)
    with torch.no_grad():
        robust = model(x_adv).argmax(1) == y
    return robust, log, int(spent.forward.sum() + spent.backward.sum()), [str(w.message) for w in caught]


@pytest.fixture(scope="module")
def standard(digits):
    """The standard ensemble's robust mask and passes on the digits CNN (shared: it is the slow part)."""
    robust, _, passes, _ = attack(*digits, **SHRUNK)
    return robust, passes


def test_fast_matches_standard_within_one_sample_at_a_third_of_its_passes(digits, standard):
    """200 images: the check's 10 % is its floor of 20 (on fewer images the floor is a larger share)."""
    model, x, y = digits
    standard, standard_passes = standard
    fast, log, fast_passes, warned = attack(model, x, y, version="fast", **SHRUNK)
    assert 20 <= int(standard.sum()) <= 180  # a model where targets matter: robust and broken samples
    assert abs(int(fast.sum()) - int(standard.sum())) <= 1
    assert fast_passes <= 0.35 * standard_passes, (fast_passes, standard_passes)  # the check included
    checked = log["check"] >= 0
    assert int(checked.sum()) >= 20 and not (log["check"] == 1).any() and not warned
    assert (log["check_forwards"][~checked] == 0).all() and log["check_forwards"].sum() > 0


def test_the_check_catches_a_crippled_fast_run_and_warns(digits, standard):
    """APGD-CE alone is a crippled fast run: checking every sample, the standard ensemble breaks the
    samples it left robust, the record names them and the call warns."""
    model, x, y = digits
    standard = standard[0]
    crippled, log, _, warned = attack(model, x, y, version="fast", attacks=("apgd-ce",), check_fraction=1.0,
                                      **SHRUNK)
    missed = torch.as_tensor(log["check"] == 1)
    assert int(crippled.sum()) > int(standard.sum())  # the crippled run overstates
    assert missed.any() and crippled[missed].all()  # each miss is a sample the crippled run left robust
    assert abs(int((crippled & ~missed).sum()) - int(standard.sum())) <= 1  # the check recovers the standard
    assert warned and "standard ensemble broke" in warned[0]


def test_the_subsample_is_a_tenth_at_least_twenty_and_seeded_per_sample(digits):
    model, x, y = digits
    aa = advx.create("attack", "autoattack", version="fast")
    from advx.streams import SampleStreams
    rows = torch.arange(200)
    a = aa.check_rows(SampleStreams.for_rows(7, rows), 200)
    b = aa.check_rows(SampleStreams.for_rows(7, rows[:100]), 100)
    assert 10 <= int(a.sum()) <= 40 and int(b.sum()) >= 20
    assert aa.check_rows(SampleStreams.for_rows(7, rows[:5]), 5).all()  # fewer than 20: all of them
    assert torch.equal(a[:100] & b, a[:100])  # a sample's own draw picks it, whatever the batch


def test_malt_ranks_the_nearest_boundary_first_where_logits_rank_another():
    """A linear model: class 1 has the second-largest logit but a boundary far away in linf (its
    weights nearly equal class 0's); class 2 a lower logit and a steep, near boundary. MALT puts
    class 2 first, the logits class 1."""
    w = torch.zeros(3, 4)
    w[0, 0], w[1, 0], w[2, 2] = 1.0, 0.9, 10.0
    model = LinearModel(w, torch.zeros(3)).eval()
    x = torch.tensor([0.5, 0.0, 0.0, 0.0]).view(1, 1, 2, 2)
    y = torch.tensor([0])
    logits = model(x)  # 0.5, 0.45, 0: class 1 next by logit; distances 0.05/0.1 = 0.5 vs 0.5/11
    assert logits.argmax(1).item() == 0 and logits[0, 1] > logits[0, 2]
    assert malt_classes(model, x, y, 2, "linf").tolist() == [[2, 1]]


def test_the_overstatement_bound_is_clopper_pearson():
    assert binomial_upper(0, 20) == pytest.approx(100 * (1 - 0.05 ** (1 / 20)), abs=1e-6)
    assert binomial_upper(20, 20) == 100.0
    assert binomial_upper(1, 20) > binomial_upper(0, 20)
