"""Paper 003's training augmentation as a data-pipeline step."""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

from advx.api import ImageAugmentation, cutout, random_crop, random_flip, random_solarize


@attrs.define
class Paper003Augmentation(ImageAugmentation):
    """Paper 003 (fixers), Section 4 training details: reflect-pad + random crop, horizontal flips,
    solarize (threshold 0.5, p = 0.3) and a 10 x 10 cutout; pad and cutout scale with the image
    (4 px and 10 px at 32 px). Name it in ``[data] augment = "paper003"``: the base, the fixers and
    the baselines all train on it, and the fixers craft their adversarials on the augmented batch."""

    name: ClassVar[str] = "paper003"

    def augment_images(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        h = x.shape[-2]
        x = random_flip(random_crop(x, max(1, round(h / 8)), generator), generator)
        return cutout(random_solarize(x, generator), max(1, round(10 * h / 32)), generator)
