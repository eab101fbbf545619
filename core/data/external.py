"""Data in the forms people hand around for evaluation: NumPy ``.npz`` arrays and torchvision's
dataset classes by name (``[data] name = "torchvision:CIFAR10"``)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, ClassVar

import attrs
import numpy as np
import torch

from advx.errors import DatasetNotFoundError

from .bundle import DataBundle
from .folders import _array_test_fraction, _nchw, class_names


def _labels(a: np.ndarray, path: Path, key: str) -> torch.Tensor:
    if a.ndim == 2 and a.shape[1] > 1:  # one-hot or probabilities: the arg max is the label
        a = a.argmax(1)
    if not np.issubdtype(a.dtype, np.integer) and not np.all(np.mod(a, 1) == 0):
        raise DatasetNotFoundError(f"npz: {path}:{key} must hold integer class labels, got {a.dtype} values")
    return torch.from_numpy(a.astype(np.int64).ravel())


@attrs.frozen
class NPZArrays:
    """Images and labels from a NumPy ``.npz`` file (read with ``allow_pickle=False``): arrays
    ``x``/``y`` (NCHW or NHWC; uint8 0-255 or float 0-1; labels as integers or one-hot), and
    ``x_test``/``y_test`` as the test split when present; otherwise a seeded stratified
    ``test_fraction`` is held out (1: every sample is test data, for evaluation only)."""

    name: ClassVar[str] = "npz"
    path: str = attrs.field(default="data/data.npz", converter=str)
    x: str = "x"
    y: str = "y"
    test_fraction: float = _array_test_fraction
    seed: int = 0
    num_classes: int | None = None

    def load(self) -> DataBundle:
        path = Path(self.path).expanduser()
        if not path.is_file():
            raise DatasetNotFoundError(f"npz: file {path} not found; set data.path to your .npz file")
        try:
            arrays = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise DatasetNotFoundError(f"npz: {path} cannot be read as .npz arrays ({exc})") from None
        with arrays:
            for key in (self.x, self.y):
                if key not in arrays.files:
                    raise DatasetNotFoundError(f"npz: {path} has no array {key!r} (it has {sorted(arrays.files)})")
            x, y = _nchw(arrays[self.x], path, self.x, "npz"), _labels(arrays[self.y], path, self.y)
            test = None
            if "x_test" in arrays.files and "y_test" in arrays.files:
                test = _nchw(arrays["x_test"], path, "x_test", "npz"), _labels(arrays["y_test"], path, "y_test")
        for xs, ys, key in [(x, y, self.x)] + ([(*test, "x_test")] if test else []):
            if len(xs) != len(ys):
                raise DatasetNotFoundError(f"npz: {path} has {len(xs)} images in {key!r} but {len(ys)} labels")
        count = int(max(y.max(), test[1].max() if test else 0)) + 1
        classes = class_names(count, self.num_classes, path, "npz")
        if test:
            return DataBundle(x, y, *test, classes)
        return DataBundle.split(x, y, classes, self.test_fraction, self.seed)


def _split_kwargs(cls: type, train: bool) -> dict[str, Any]:
    params = inspect.signature(cls).parameters
    if "train" in params:
        return {"train": train}
    if "split" in params:
        return {"split": "train" if train else "test"}
    raise DatasetNotFoundError(f"torchvision:{cls.__name__} has neither a train nor a split argument; use one of its "
                               f"classification sets with a train/test split (MNIST, CIFAR10, SVHN, ...)")


def _as_arrays(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 NCHW images and int64 labels: from ``data``/``targets`` where the set keeps them in
    memory, else sample by sample (PIL images)."""
    data = getattr(ds, "data", None)
    labels = next((getattr(ds, k) for k in ("targets", "labels") if getattr(ds, k, None) is not None), None)
    if data is not None and labels is not None and hasattr(data, "shape"):
        x = np.asarray(data)
    else:
        images, labels = zip(*(ds[i] for i in range(len(ds))))
        x = np.stack([np.asarray(im) for im in images])
    x = x[:, None] if x.ndim == 3 else x
    if x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    x = torch.from_numpy(np.ascontiguousarray(x))
    return (x if x.dtype == torch.uint8 else x.float()), torch.as_tensor(np.asarray(labels), dtype=torch.int64)


@attrs.frozen
class TorchvisionDataset:
    """A torchvision dataset class by name, ``[data] name = "torchvision:CIFAR10"``: its train and
    test splits read from ``root`` in torchvision's own layout (``download = true`` lets
    torchvision fetch them). Images are kept as uint8 pixels; no transform is applied."""

    name: ClassVar[str] = "torchvision:<Dataset>"
    target: str
    root: str = attrs.field(default="data", converter=str)
    download: bool = False

    def load(self) -> DataBundle:
        import torchvision.datasets as tvd

        cls = getattr(tvd, self.target, None)
        if not (isinstance(cls, type) and self.target in tvd.__all__):
            raise DatasetNotFoundError(f"data.name: torchvision has no dataset {self.target!r}")
        parts = []
        for train in (True, False):
            try:
                ds = cls(self.root, download=self.download, **_split_kwargs(cls, train))
            except RuntimeError as exc:  # torchvision: "Dataset not found. You can use download=True ..."
                raise DatasetNotFoundError(f"torchvision:{self.target}: not found in {self.root} ({exc}); put the "
                                           f"files there or set data.download = true (needs network)") from None
            parts.extend(_as_arrays(ds))
        names = getattr(ds, "classes", None)
        count = int(max(parts[1].max(), parts[3].max())) + 1
        classes = tuple(str(c) for c in names) if names and len(names) >= count else tuple(str(i) for i in range(count))
        return DataBundle(*parts, classes)


#: Data handed to ``advx.evaluate`` as tensors, by digest.
IN_MEMORY: dict[str, DataBundle] = {}


def remember(data: DataBundle) -> str:
    """Register ``data`` for ``name = "memory:<digest>"`` and return that name."""
    import hashlib

    h = hashlib.sha256(repr(data.classes).encode())
    for t in (data.x_train, data.y_train, data.x_test, data.y_test):
        h.update(repr((tuple(t.shape), t.dtype)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    digest = h.hexdigest()[:16]
    IN_MEMORY[digest] = data
    return f"memory:{digest}"


@attrs.frozen
class MemoryDataset:
    """Tensors passed to ``advx.evaluate`` (``memory:<digest of the tensors>``)."""

    name: ClassVar[str] = "memory:<digest>"
    target: str

    def load(self) -> DataBundle:
        if self.target not in IN_MEMORY:
            raise DatasetNotFoundError(f"data.name: memory:{self.target} names tensors handed to advx.evaluate in "
                                       f"another process; save them (npz) and name the file instead")
        return IN_MEMORY[self.target]


SOURCES: dict[str, type] = {"torchvision": TorchvisionDataset, "memory": MemoryDataset}
