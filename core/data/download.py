"""Fetching datasets for users with network access (``data.download = true``).

torchvision knows the mirrors and checksums, so it does the fetching; it writes the same
on-disk layout our readers expect (``root/MNIST/raw``, ``root/cifar-10-batches-py``, ...). The
readers in ``sources`` then parse the files themselves, so a folder copied in by hand works too.
"""

from __future__ import annotations

from pathlib import Path

from advx.errors import DatasetNotFoundError

# dataset name -> (torchvision class, keyword sets that fetch each split)
_TORCHVISION = {
    "mnist": ("MNIST", ({"train": True}, {"train": False})),
    "fashion-mnist": ("FashionMNIST", ({"train": True}, {"train": False})),
    "cifar10": ("CIFAR10", ({"train": True}, {"train": False})),
    "cifar100": ("CIFAR100", ({"train": True}, {"train": False})),
    "svhn": ("SVHN", ({"split": "train"}, {"split": "test"})),
}


def fetch(name: str, root: Path) -> None:
    """Download ``name`` into ``root`` with torchvision; a clear error if that fails."""
    import torchvision.datasets as tvd

    cls_name, splits = _TORCHVISION[name]
    root.mkdir(parents=True, exist_ok=True)
    try:
        for kwargs in splits:
            getattr(tvd, cls_name)(str(root), download=True, **kwargs)
    except (OSError, RuntimeError, ValueError) as e:  # URLError is an OSError
        raise DatasetNotFoundError(f"{name}: downloading into {root} failed ({e}). Without network, copy the "
                                   f"files there by hand and set data.download = false.") from e
