"""The per-sample pass ledger (issue #48, item 3): every row of every pass is charged to the
sample it carried, through the compaction attacks do, and what no sample owned is counted apart."""

import numpy as np
import torch
from torch import nn

import advx
from advx import ledger
from advx.evaluation.counting import CountingModel


def counted():
    return CountingModel(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)))


def test_nested_rows_compose_and_every_tally_on_the_path_is_charged():
    model, x = counted(), torch.rand(6, 1, 2, 2, requires_grad=True)
    with ledger.tally(6) as outer:
        model(x)  # the whole batch: one forward each
        with ledger.sample_rows(torch.tensor([1, 3, 5])), ledger.tally(3) as inner:
            with ledger.sample_rows(torch.tensor([2, 2])) as frame:  # repeats: sample 5 twice
                model(x[:2]).sum().backward()
                frame.set(torch.tensor([0]))  # compacted: now only sample 1 of the outer six
                model(x[:1])
    assert outer.forward.tolist() == [1, 2, 1, 1, 1, 3]
    assert outer.backward.tolist() == [0, 0, 0, 0, 0, 2]
    assert inner.forward.tolist() == [1, 0, 2] and inner.backward.tolist() == [0, 0, 2]
    assert outer.unattributed == inner.unattributed == {"forward": 0, "backward": 0}
    assert int(outer.forward.sum()) == model.forward_rows == 6 + 2 + 1


def test_a_batch_that_matches_no_frame_is_unattributed_never_guessed():
    model, x = counted(), torch.rand(4, 1, 2, 2)
    with ledger.tally(4) as spent:
        model(torch.cat([x, x]))  # an undeclared repeat: 8 rows under a 4-sample account
        with ledger.sample_rows(torch.tensor([0, 1])):
            model(x[:3])  # declared two rows, sent three
        with ledger.sample_rows(torch.tensor([7])):
            model(x[:1])  # a row beyond the account
    assert spent.forward.sum() == 0 and spent.unattributed["forward"] == 8 + 3 + 1
    with ledger.sample_rows(torch.tensor([0])):  # no tally open: nothing charged, nothing broken
        model(x[:1])


def run(tmp_path, attack, test_limit=40):
    cfg = {"experiment": {"name": "ledger", "seed": 0, "cache_dir": str(tmp_path / "cache")},
           "data": {"name": "digits", "test_limit": test_limit},
           "model": {"name": "digits-cnn", "train": {"epochs": 2, "batch_size": 64}},
           "attack": [attack], "evaluate": {"chunk_size": 32, "modes": ["oblivious"]}}
    return advx.load_experiment(cfg).run(tmp_path / "r.h5").get("base", "none", attack["label"])


def test_autoattack_ledger_known_counts_and_totals(tmp_path):
    """A sample that survives every member costs exactly what each member's algorithm spends:
    APGD-CE (steps + 1 forward, steps backward), APGD-T per target the same plus one clean pass to
    rank targets, FAB-T per target a forward and a gradient per step plus its clean pass, Square one
    forward per query plus two to start; each member one verdict pass more. Per sample the crafting
    is the members plus the ensemble's clean pass, and the per-sample counts add up to the rows the
    cell's model carried while crafting."""
    steps, queries, targets = 4, 12, 3
    c = run(tmp_path, {"name": "autoattack", "eps": 0.02, "steps": steps, "queries": queries, "targets": targets,
                       "label": "AA"})
    a = c.arrays
    fw, bw, broken = a["member_forwards"], a["member_backwards"], a["broken_by"]
    survived = broken == -1
    assert survived.any() and (broken >= 0).any()
    expected_fw = [steps + 2, targets * (steps + 1) + 2, targets * 2 * steps + 2, queries + 3]
    expected_bw = [steps, targets * steps, targets * steps, 0]
    assert (fw[survived] == expected_fw).all() and (bw[survived] == expected_bw).all()
    for k in range(4):  # a member after the one that broke a sample never sees it
        assert (fw[broken == k][:, k + 1:] == 0).all() and (fw[broken == k][:, k] > 0).all()
    attacked = broken != -2
    assert (a["craft_forwards"][attacked] == fw[attacked].sum(1) + 1).all()
    assert (a["craft_backwards"] == bw.sum(1)).all() and (a["craft_forwards"][~attacked] == 0).all()
    info = c.info
    assert info["unattributed_forward_rows"] == info["unattributed_backward_rows"] == 0
    assert int(a["craft_forwards"].sum()) == info["craft_forward_rows"]
    assert int(a["craft_backwards"].sum()) == info["craft_backward_rows"] == info["backward_rows"]
    assert info["forward_rows"] - info["craft_forward_rows"] == len(broken)  # one scoring pass each


def test_pgd_with_restarts_charges_only_the_samples_each_restart_attacks(tmp_path):
    c = run(tmp_path, {"name": "pgd", "eps": 0.05, "steps": 3, "restarts": 3, "label": "PGD"})
    a, info = c.arrays, c.info
    assert info["unattributed_forward_rows"] == 0
    assert int(a["craft_forwards"].sum()) == info["craft_forward_rows"]
    assert int(a["craft_backwards"].sum()) == info["craft_backward_rows"]
    robust = a["correct"].astype(bool)
    # a sample robust to the end ran all three restarts: 3 x 3 steps, each a forward and a backward,
    # and the check after each restart (no check after the last: the evaluator scores it)
    assert (a["craft_backwards"][robust] == 9).all()
    assert (a["craft_forwards"][robust] == 9 + 3).all()
    assert np.unique(a["craft_backwards"][~robust]).size > 1  # fooled ones stopped at different steps
