"""Extract the 20 real CIFAR-10 test images that ship inside foolbox's wheel into an .npz.

No CIFAR-10 download is possible on the project's machines; these 20 images (foolbox's
``data/cifar10_<i>_<label>.png``) are real test images. The .npz they make is committed as
``benchmarks/data/cifar10_foolbox.npz`` (uint8 NHWC ``x``, ``y``), so the AutoAttack reference
benchmark and tests need neither foolbox nor the network:

    pip download foolbox==3.3.4 --no-deps -d /tmp/fb
    python benchmarks/foolbox_cifar10.py /tmp/fb/foolbox-3.3.4-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import io
import re
import zipfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "data" / "cifar10_foolbox.npz"


def extract(wheel: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from PIL import Image

    xs, ys, names = [], [], []
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(z.namelist()):
            m = re.fullmatch(r"foolbox/data/cifar10_(\d+)_(\d+)\.png", name)
            if m:
                xs.append(np.asarray(Image.open(io.BytesIO(z.read(name))).convert("RGB"), dtype=np.uint8))
                ys.append(int(m.group(2)))
                names.append(name)
    return np.stack(xs), np.asarray(ys, dtype=np.int64), names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", type=Path)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    x, y, names = extract(args.wheel)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, x=x, y=y, source=np.asarray([f"{args.wheel.name}:{n}" for n in names]))
    print(f"{len(y)} images, labels {y.tolist()} -> {args.out}")


if __name__ == "__main__":
    main()
