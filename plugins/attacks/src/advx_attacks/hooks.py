"""Register the attacks with advx."""

from __future__ import annotations

from advx.registry import hookimpl

from .apgd import APGD
from .gradient import BIM, FGSM, PGD, GaussianNoise
from .minimal import CarliniWagnerL2, DeepFool

ATTACKS = [GaussianNoise, FGSM, BIM, PGD, APGD, CarliniWagnerL2, DeepFool]


@hookimpl
def advx_register_attacks() -> list[type]:
    return list(ATTACKS)
