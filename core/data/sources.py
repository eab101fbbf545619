"""Built-in dataset loaders. Each is an attrs component whose ``load()`` returns a DataBundle.

Readers parse the standard on-disk formats themselves (IDX, CIFAR pickles, SVHN .mat, image
folders, HDF5), so no network and no torchvision dataset object is needed to read data that is
already there; ``download = true`` fetches missing files through torchvision (``download.py``).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import ClassVar

import attrs
import numpy as np
import torch

from advx.errors import DatasetNotFoundError

from .bundle import DataBundle
from .download import fetch
from .external import NPZArrays
from .folders import HDF5Arrays, ImageFolder
from .idx import find_idx, read_idx
from .pathology import PathMNIST, PCam

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")

_root = attrs.field(default="data", converter=str)
_download = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
_fraction = attrs.field(default=0.2, validator=[attrs.validators.gt(0.0), attrs.validators.lt(1.0)])


def _not_found(name: str, what: str, where: Path) -> DatasetNotFoundError:
    return DatasetNotFoundError(f"{name}: {what} not found in {where}. Put the files there, point data.root at "
                                f"them, or set data.download = true to fetch them (needs network).")


def _tensor(images: np.ndarray) -> torch.Tensor:
    """NCHW uint8 tensor from N x H x W (grey) or N x C x H x W arrays."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    return x[:, None] if x.ndim == 3 else x


@attrs.frozen
class Digits:
    """scikit-learn's bundled handwritten digits (1,797 8x8 grey images, 10 classes), no download.

    The embedded default for quick runs and tests; pixels 0-16 are scaled to [0, 1] and a seeded
    stratified ``test_fraction`` is held out (0.3 gives 1,258 train / 539 test)."""

    name: ClassVar[str] = "digits"
    test_fraction: float = attrs.field(default=0.3, validator=[attrs.validators.gt(0.0), attrs.validators.lt(1.0)])
    seed: int = 0

    def load(self) -> DataBundle:
        images, target = _digits_arrays()
        x = torch.from_numpy(images.astype(np.float32) / 16.0)[:, None]
        y = torch.from_numpy(target).long()
        return DataBundle.split(x, y, tuple(str(i) for i in range(10)), self.test_fraction, self.seed)


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(1797 x 8 x 8 pixels 0-16, labels) from the CSV scikit-learn ships, read without importing
    scikit-learn (its import is over a second of every fresh process's start); through
    ``load_digits`` where the file is not at its usual place."""
    import gzip
    import importlib.util

    try:
        spec = importlib.util.find_spec("sklearn")
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as f:
                data = np.loadtxt(f, delimiter=",")
            return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise DatasetNotFoundError("digits needs scikit-learn: pip install 'advx[digits]'") from e
    d = load_digits()
    return d.images, d.target


_IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _read_mnist_family(folders: list[Path], classes: tuple[str, ...]) -> DataBundle | str:
    """The bundle from the first folder that holds all four IDX files, else the first file missing."""
    lacking = []
    for folder in folders:
        paths = [find_idx(folder, s) for s in _IDX_STEMS]
        if all(paths):
            xtr, ytr, xte, yte = (read_idx(p) for p in paths)
            return DataBundle(_tensor(xtr), torch.from_numpy(ytr.astype(np.int64)), _tensor(xte),
                              torch.from_numpy(yte.astype(np.int64)), classes)
        missing = [s for s, p in zip(_IDX_STEMS, paths) if p is None]
        lacking.append(f"{missing[0]}[.gz]")
    return lacking[0]


@attrs.frozen
class MNIST:
    """MNIST (LeCun et al.): 60,000 / 10,000 28x28 grey digits, IDX files in ``root/MNIST/raw``
    (torchvision's layout; gzipped or not). ``download = true`` fetches them."""

    name: ClassVar[str] = "mnist"
    root: str = _root
    download: bool = _download

    def load(self) -> DataBundle:
        folder = Path(self.root) / "MNIST" / "raw"
        if self.download:
            fetch(self.name, Path(self.root))
        data = _read_mnist_family([folder], tuple(str(i) for i in range(10)))
        if isinstance(data, str):
            raise _not_found(self.name, data, folder)
        return data


@attrs.frozen
class FashionMNIST:
    """Fashion-MNIST (Xiao et al. 2017): 60,000 / 10,000 28x28 grey clothing images, 10 classes.

    Looks in ``root/FashionMNIST/raw`` (torchvision's layout), then in Debian's package
    ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist); ``download = true`` fetches."""

    name: ClassVar[str] = "fashion-mnist"
    root: str = _root
    download: bool = _download

    def load(self) -> DataBundle:
        folder = Path(self.root) / "FashionMNIST" / "raw"
        if self.download:
            fetch(self.name, Path(self.root))
        data = _read_mnist_family([folder, DEBIAN_FASHION_MNIST], FASHION_CLASSES)
        if isinstance(data, str):
            raise DatasetNotFoundError(
                f"{self.name}: {data} not found in {folder} nor in "
                f"{DEBIAN_FASHION_MNIST}. Install Debian's dataset-fashion-mnist, put the files in {folder}, "
                f"or set data.download = true to fetch them (needs network).")
        return data


#: What a CIFAR batch holds: dicts, lists, strings and numpy arrays. Nothing else is ever built.
_CIFAR_GLOBALS = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
                  for n in ("_reconstruct", "scalar")} | {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode")}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR batches contain: a crafted file in the data folder cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: CIFAR batches hold only arrays, "
                                         f"lists and strings")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            obj = _CifarUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise DatasetNotFoundError(f"{path}: not a CIFAR batch ({e})") from None
    if not isinstance(obj, dict):
        raise DatasetNotFoundError(f"{path}: not a CIFAR batch (holds a {type(obj).__name__}, not a dict)")
    return obj


def _cifar_images(rows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rows.reshape(-1, 3, 32, 32).astype(np.uint8)))


@attrs.frozen
class CIFAR10:
    """CIFAR-10 (Krizhevsky 2009): 50,000 / 10,000 32x32 colour images, 10 classes, from the
    python pickles in ``root/cifar-10-batches-py``. ``download = true`` fetches them."""

    name: ClassVar[str] = "cifar10"
    root: str = _root
    download: bool = _download

    def load(self) -> DataBundle:
        base = Path(self.root) / "cifar-10-batches-py"
        if self.download:
            fetch(self.name, Path(self.root))
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        missing = [n for n in names if not (base / n).is_file()]
        if missing:
            raise _not_found(self.name, ", ".join(missing), base)
        batches = [_unpickle(base / n) for n in names]
        xtr = _cifar_images(np.concatenate([b["data"] for b in batches[:5]]))
        ytr = torch.tensor([label for b in batches[:5] for label in b["labels"]])
        meta = base / "batches.meta"
        classes = tuple(_unpickle(meta)["label_names"]) if meta.is_file() else tuple(str(i) for i in range(10))
        return DataBundle(xtr, ytr, _cifar_images(batches[5]["data"]), torch.tensor(batches[5]["labels"]), classes)


@attrs.frozen
class CIFAR100:
    """CIFAR-100 (Krizhevsky 2009): 50,000 / 10,000 32x32 colour images with 100 fine (or 20
    coarse) classes, from ``root/cifar-100-python``. ``download = true`` fetches them."""

    name: ClassVar[str] = "cifar100"
    root: str = _root
    download: bool = _download
    labels: str = attrs.field(default="fine", validator=attrs.validators.in_(["fine", "coarse"]))

    def load(self) -> DataBundle:
        base = Path(self.root) / "cifar-100-python"
        if self.download:
            fetch(self.name, Path(self.root))
        missing = [n for n in ("train", "test") if not (base / n).is_file()]
        if missing:
            raise _not_found(self.name, ", ".join(missing), base)
        train, test = _unpickle(base / "train"), _unpickle(base / "test")
        key = f"{self.labels}_labels"
        meta = base / "meta"
        count = 100 if self.labels == "fine" else 20
        classes = (tuple(_unpickle(meta)[f"{self.labels}_label_names"]) if meta.is_file()
                   else tuple(str(i) for i in range(count)))
        return DataBundle(_cifar_images(train["data"]), torch.tensor(train[key]), _cifar_images(test["data"]),
                          torch.tensor(test[key]), classes)


@attrs.frozen
class SVHN:
    """SVHN cropped digits (Netzer et al. 2011): 73,257 / 26,032 32x32 colour images from
    ``root/{train,test}_32x32.mat``; label 10 (the digit 0) becomes 0. Reading needs scipy."""

    name: ClassVar[str] = "svhn"
    root: str = _root
    download: bool = _download

    def load(self) -> DataBundle:
        root = Path(self.root)
        if self.download:
            fetch(self.name, root)
        parts = []
        for split in ("train", "test"):
            path = root / f"{split}_32x32.mat"
            if not path.is_file():
                raise _not_found(self.name, path.name, root)
            try:
                from scipy.io import loadmat
            except ImportError as e:
                raise DatasetNotFoundError("svhn's .mat files need scipy: pip install scipy") from e
            mat = loadmat(path)
            parts.append(torch.from_numpy(np.ascontiguousarray(mat["X"].transpose(3, 2, 0, 1))))
            parts.append(torch.from_numpy(mat["y"].astype(np.int64).flatten() % 10))
        return DataBundle(*parts, tuple(str(i) for i in range(10)))


DATASETS = [Digits, MNIST, FashionMNIST, CIFAR10, CIFAR100, SVHN, ImageFolder, HDF5Arrays, NPZArrays, PCam, PathMNIST]
