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


def fetch_url(url: str, dest: Path, gunzip: bool = False) -> None:
    """Download ``url`` to ``dest`` (gunzipped on the fly when asked) through a temporary file,
    so an interrupted download never leaves a partial ``dest``; a clear error if it fails."""
    import gzip
    import shutil
    import urllib.request

    from advx.progress import progress

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            size = int(response.headers.get("Content-Length") or 0) or None
            with progress(total=size, desc=f"download {dest.name}", unit="B", unit_scale=True) as bar:
                source = _Counting(response, bar)
                shutil.copyfileobj(gzip.GzipFile(fileobj=source) if gunzip else source, out, 1 << 20)
        tmp.replace(dest)
    except (OSError, EOFError) as e:  # URLError and HTTPError are OSErrors; EOFError: truncated gzip
        tmp.unlink(missing_ok=True)
        raise DatasetNotFoundError(f"downloading {url} into {dest.parent} failed ({e}). Without network, copy "
                                   f"{dest.name} there by hand and set data.download = false.") from None


class _Counting:
    """A read-only stream that advances a progress bar by the bytes it hands out."""

    def __init__(self, stream, bar) -> None:
        self.stream, self.bar = stream, bar

    def read(self, n: int = -1) -> bytes:
        chunk = self.stream.read(n)
        self.bar.update(len(chunk))
        return chunk
