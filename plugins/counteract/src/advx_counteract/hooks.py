"""Register paper 004's inference defences with advx."""

from __future__ import annotations

from advx.api import hookimpl

from .counteract import Counteract
from .distribution import DistributionClassifier
from .randomized import DEFENSES

#: the advx plugin API range this plugin is written for (advx.api.API_VERSION)
ADVX_API = ">=1.0,<2"


@hookimpl
def advx_register_inference_defenses() -> list[type]:
    return [Counteract, *DEFENSES, DistributionClassifier]
