"""Count forward and backward passes through a model (an attack's cost, per cell), and charge
each pass's rows to the samples they carried (:mod:`advx.ledger`)."""

from __future__ import annotations

import torch
from torch import nn

from advx import ledger


class CountingModel(nn.Module):
    """Transparent wrapper counting batched forward and backward passes, and the samples
    (rows) they carried: an attack that drops finished samples runs fewer rows than passes x N."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.forwards = self.backwards = 0
        self.forward_rows = self.backward_rows = 0
        self.feature_layers = tuple(getattr(model, "feature_layers", ()))
        # a new Module says training=True; take the inner model's mode instead, or an attack that
        # restores "the mode it found" would switch the model into train mode (dropout on)
        self.train(model.training)

    def _backward(self, grad: torch.Tensor) -> torch.Tensor:
        self.backwards += 1
        self.backward_rows += len(grad)
        return grad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        self.forwards += 1
        self.forward_rows += len(x)
        charge_backward = ledger.charge_forward(len(x))  # per sample, where a tally is open
        if out.requires_grad:
            out.register_hook(self._backward)
            if charge_backward is not None:
                out.register_hook(lambda grad: charge_backward())
        return out

    def take(self) -> tuple[int, int]:
        """Return and reset (forwards, backwards)."""
        counts = (self.forwards, self.backwards)
        self.forwards = self.backwards = 0
        return counts
