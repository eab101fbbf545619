"""Losses on soft labels (rows of ``target`` sum to 1), in fp32."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a probability vector per sample (mixup, soft labels)."""
    return -(target * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017) on soft labels: sum_c -t_c (1 - p_c)^gamma log p_c.

    Paper 003 trains its ResNet-9 base and fixers with it. gamma = 0 is cross-entropy.
    """
    logp = F.log_softmax(logits.float(), dim=1)
    return -(target * (1 - logp.exp()).pow(gamma) * logp).sum(1).mean()


def one_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(y.long(), num_classes).float()


def make_criterion(kind: str, gamma: float = 2.0):
    if kind == "focal":
        return lambda logits, target: focal_loss(logits, target, gamma)
    return soft_cross_entropy
