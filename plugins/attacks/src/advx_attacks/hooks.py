"""Register the attacks with advx."""

from __future__ import annotations

from advx.api import hookimpl

from .apgd import APGD
from .apgd_targeted import APGDTargeted
from .autoattack import AutoAttack
from .fab import FAB
from .gradient import BIM, FGSM, PGD, GaussianNoise
from .cw import CarliniWagnerL2
from .minimal import DeepFool
from .square import Square

#: the advx plugin API range this plugin is written for (advx.api.API_VERSION)
ADVX_API = ">=1.0,<2"

ATTACKS = [GaussianNoise, FGSM, BIM, PGD, APGD, CarliniWagnerL2, DeepFool, APGDTargeted, FAB, Square, AutoAttack]


@hookimpl
def advx_register_attacks() -> list[type]:
    return list(ATTACKS)
