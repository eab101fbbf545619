"""PGD hands back each sample's best point, not its last iterate."""

import torch
from torch import nn

import advx
from advx.evaluation.counting import CountingModel


class Slab(nn.Module):
    """Class 1 only inside a thin slab |x - 0.55| < 0.02 of a 1-pixel image: a sign step of 0.06
    from 0.5 lands inside (fooled), the next one jumps back out."""

    def forward(self, x):
        z = 0.02 - (x.flatten(1)[:, :1] - 0.55).abs()
        return torch.cat([torch.zeros_like(z), 50 * z], 1)


def test_pgd_keeps_the_point_that_fooled_the_model_when_the_last_step_leaves_it():
    x, y = torch.full((4, 1, 1, 1), 0.5), torch.zeros(4, dtype=torch.long)
    model = Slab()
    for steps in (2, 4):  # the iterates go 0.5, 0.56, 0.5, 0.56, 0.5: even step counts end outside
        x_adv = advx.create("attack", "pgd", eps=0.1, alpha=0.06, steps=steps, random_start=False)(model, x, y)
        assert (model(x_adv).argmax(1) == 1).all(), steps
        assert torch.allclose(x_adv, torch.full_like(x, 0.56))


class Bowl(nn.Module):
    """The loss peaks at x = 0.53 and never fools: sign steps of 0.04 from 0.5 go 0.54, 0.50, 0.54, ..."""

    def forward(self, x):
        z = -(x.flatten(1)[:, :1] - 0.53).abs()
        return torch.cat([torch.full_like(z, 1.0), z], 1)


def test_without_success_the_last_iterate_is_returned_at_exactly_k_passes():
    x, y = torch.full((2, 1, 1, 1), 0.5), torch.zeros(2, dtype=torch.long)
    for steps, last in ((3, 0.54), (4, 0.50)):
        counted = CountingModel(Bowl())
        x_adv = advx.create("attack", "pgd", eps=0.1, alpha=0.04, steps=steps, random_start=False)(counted, x, y)
        assert torch.allclose(x_adv, torch.full_like(x, last))  # standard PGD's point
        assert (counted.forwards, counted.backwards) == (steps, steps)  # no pass spent checking it


def test_an_unseen_last_iterate_that_fools_is_returned():
    x, y = torch.full((3, 1, 1, 1), 0.5), torch.zeros(3, dtype=torch.long)
    x_adv = advx.create("attack", "pgd", eps=0.1, alpha=0.06, steps=1, random_start=False)(Slab(), x, y)
    assert torch.allclose(x_adv, torch.full_like(x, 0.56)) and (Slab()(x_adv).argmax(1) == 1).all()


def test_restarts_check_only_the_points_no_pass_has_seen():
    # slab samples are seen fooled inside their run; bowl samples never are, so each restart
    # checks its last iterate with one forward pass of those samples only
    class Mixed(nn.Module):
        def forward(self, x):
            return torch.where(torch.arange(len(x))[:, None] < 2, Slab()(x), Bowl()(x))

    x, y = torch.full((4, 1, 1, 1), 0.5), torch.zeros(4, dtype=torch.long)
    seen = []

    class Sizes(nn.Module):
        def forward(self, z):
            seen.append(len(z))
            return Mixed()(z) if len(z) == 4 else Bowl()(z)

    x_adv = advx.create("attack", "pgd", eps=0.1, alpha=0.06, steps=2, random_start=False, restarts=2)(Sizes(), x, y)
    assert torch.allclose(x_adv[:2], torch.full_like(x[:2], 0.56))
    assert seen == [4, 4, 2, 2, 2, 2]  # run 1, its check of the 2 unseen, run 2 on them, its check
