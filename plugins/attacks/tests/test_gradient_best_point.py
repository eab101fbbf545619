"""PGD hands back each sample's best point, not its last iterate."""

import torch
from torch import nn

import advx


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


def test_without_success_the_highest_loss_point_is_kept():
    class Bowl(nn.Module):  # the loss peaks at x = 0.53 and never fools: overshooting steps must not lose it
        def forward(self, x):
            z = -(x.flatten(1)[:, :1] - 0.53).abs()
            return torch.cat([torch.full_like(z, 1.0), z], 1)

    x, y = torch.full((2, 1, 1, 1), 0.5), torch.zeros(2, dtype=torch.long)
    x_adv = advx.create("attack", "pgd", eps=0.1, alpha=0.04, steps=4, random_start=False)(Bowl(), x, y)
    assert torch.allclose(x_adv, torch.full_like(x, 0.54))  # 0.54 is nearer the peak than 0.5 or 0.58
