"""Loaders for the user's own data: an image folder (HIST patches, one sub-folder per class)
and arrays in an HDF5 file. Neither can be downloaded; a missing path is a clear error."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import attrs
import numpy as np
import torch

from advx.errors import AdvxWarning, DatasetNotFoundError

from .bundle import DataBundle

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp"}
_test_fraction = attrs.field(default=0.2, validator=[attrs.validators.gt(0.0), attrs.validators.lt(1.0)])
#: arrays handed around for evaluation may be all test data: test_fraction = 1 keeps every sample
_array_test_fraction = attrs.field(default=0.2, validator=[attrs.validators.gt(0.0), attrs.validators.le(1.0)])


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) if folder.is_dir() else []


def _read_images(files: list[Path], size: int | None, desc: str) -> torch.Tensor:
    from PIL import Image

    from advx.progress import progress

    out = []
    for path in progress(iterable=files, desc=desc, unit="img"):
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                if size is not None and im.size != (size, size):
                    im = im.resize((size, size), Image.BILINEAR)
                out.append(np.asarray(im))
        except (OSError, ValueError, SyntaxError) as e:  # truncated or not an image; PIL raises all three
            raise DatasetNotFoundError(f"imagefolder: cannot read the image {path} ({e}); fix or remove it") from None
    shapes = {a.shape for a in out}
    if len(shapes) > 1:
        raise DatasetNotFoundError(f"images differ in size ({sorted(shapes)[:3]} ...); set data.size to resize them")
    return torch.from_numpy(np.stack(out).transpose(0, 3, 1, 2).copy())


@attrs.frozen
class ImageFolder:
    """Images in one sub-folder per class, e.g. paper 003's HIST patches (artifact, benign,
    malignant, other), read as RGB uint8 and resized to ``size`` x ``size`` when given.

    With ``root/train/<class>`` and ``root/test/<class>`` the given split is kept (HIST is split by
    patient, so never re-split it); with only ``root/<class>`` a seeded stratified ``test_fraction``
    is held out, with a warning. ``classes`` names the class folders expected (in label order);
    they are then checked and named in the error when the folder is missing."""

    name: ClassVar[str] = "imagefolder"
    root: str = attrs.field(default="data/images", converter=str)
    size: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(1)))
    test_fraction: float = _test_fraction
    seed: int = 0
    classes: tuple[str, ...] | None = attrs.field(default=None, converter=attrs.converters.optional(tuple))

    def _scan(self, folder: Path, classes: tuple[str, ...]) -> tuple[list[Path], torch.Tensor]:
        files, labels = [], []
        for label, c in enumerate(classes):
            found = sorted(p for p in (folder / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            files += found
            labels += [label] * len(found)
        if not files:
            raise DatasetNotFoundError(f"imagefolder: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
        return files, torch.tensor(labels)

    def load(self) -> DataBundle:
        root = Path(self.root)
        split = (root / "train").is_dir() and (root / "test").is_dir()
        train_dir = root / "train" if split else root
        classes = tuple(p.name for p in _class_dirs(train_dir))
        if not classes and self.classes:
            names = "{" + ",".join(self.classes) + "}"
            raise DatasetNotFoundError(
                f"imagefolder: no images under {root}; expected {root}/train/{names}/*.png and "
                f"{root}/test/{names}/*.png (split by patient). Point data.root at your images.")
        if not classes:
            raise DatasetNotFoundError(
                f"imagefolder: {root} needs one sub-folder per class (root/<class>/*.png), or root/train/<class> "
                f"and root/test/<class>; nothing found there. Point data.root at your images.")
        if self.classes is not None and set(classes) != set(self.classes):
            raise DatasetNotFoundError(f"imagefolder: {train_dir} has class folders {list(classes)}; "
                                       f"data.classes expects {list(self.classes)}")
        classes = tuple(self.classes) if self.classes is not None else classes
        files, y = self._scan(train_dir, classes)
        x = _read_images(files, self.size, "images")
        if not split:
            warnings.warn(f"imagefolder: {root} has no train/ and test/ sub-folders, so a random "
                          f"{self.test_fraction:.0%} of the images is held out for testing; if images of one patient "
                          f"(or slide) can land on both sides, split them yourself into {root}/train/<class> and "
                          f"{root}/test/<class>", AdvxWarning, stacklevel=2)
            return DataBundle.split(x, y, classes, self.test_fraction, self.seed)
        test_classes = tuple(p.name for p in _class_dirs(root / "test"))
        if set(test_classes) != set(classes):
            raise DatasetNotFoundError(f"imagefolder: train classes {classes} differ from test classes {test_classes}")
        test_files, y_test = self._scan(root / "test", classes)
        return DataBundle(x, y, _read_images(test_files, self.size, "test images"), y_test, classes)


def _nchw(a: np.ndarray, path: Path, key: str, kind: str = "hdf5") -> torch.Tensor:
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise DatasetNotFoundError(f"{kind}: {path}:{key} must hold images N x C x H x W or N x H x W x C, "
                                   f"got shape {a.shape}")
    if a.shape[1] not in (1, 3, 4) and a.shape[3] in (1, 3, 4):
        a = a.transpose(0, 3, 1, 2)  # NHWC, as most image arrays are written
    if a.dtype != np.uint8:
        a = a.astype(np.float32)
        bad = ~np.isfinite(a.reshape(len(a), -1)).all(1)
        if bad.any():  # a NaN image would be predicted as some class and counted
            raise DatasetNotFoundError(f"{kind}: {path}:{key}: {int(bad.sum())} of {len(a)} images have NaN or infinite "
                                       f"pixels (the first at index {int(np.argmax(bad))}); fix or drop them")
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo < 0 or hi > 1:  # floats are read as [0, 1] pixels: a 0-255 array would be evaluated as garbage
            hint = "store uint8, or divide by 255" if hi > 1 else "rescale to [0, 1]"
            raise DatasetNotFoundError(f"{kind}: {path}:{key} holds float pixels in [{lo:g}, {hi:g}], but float "
                                       f"images must lie in [0, 1] ({hint})")
    return torch.from_numpy(np.ascontiguousarray(a))


def class_names(count: int, num_classes: int | None, path: Any, kind: str) -> tuple[str, ...]:
    """Class names 0 … C−1: ``num_classes`` when given (a test file may miss some classes; the
    network scores all of them), else one past the largest label."""
    if num_classes is None:
        return tuple(str(i) for i in range(count))
    if count > num_classes:
        raise DatasetNotFoundError(f"{kind}: {path} has label {count - 1}, outside num_classes = {num_classes}")
    return tuple(str(i) for i in range(num_classes))


@attrs.frozen
class HDF5Arrays:
    """Images and integer labels from an HDF5 file: datasets ``x``/``y`` (NCHW or NHWC; uint8
    0-255 or float 0-1). ``x_test``/``y_test`` in the file are used as the test split when present,
    else a seeded stratified ``test_fraction`` is held out (1: all of it, for evaluation only).
    Class names come from the file attribute ``classes`` when it is there."""

    name: ClassVar[str] = "hdf5"
    path: str = attrs.field(default="data/data.h5", converter=str)
    x: str = "x"
    y: str = "y"
    test_fraction: float = _array_test_fraction
    seed: int = 0
    num_classes: int | None = None

    def load(self) -> DataBundle:
        import h5py

        path = Path(self.path)
        if not path.is_file():
            raise DatasetNotFoundError(f"hdf5: file {path} not found; set data.path to your HDF5 file")
        with h5py.File(path, "r") as f:
            for key in (self.x, self.y):
                if key not in f:
                    raise DatasetNotFoundError(f"hdf5: {path} has no dataset {key!r} (it has {sorted(f.keys())})")
            x, y = _nchw(f[self.x][()], path, self.x), torch.from_numpy(f[self.y][()].astype(np.int64).ravel())
            test = ("x_test" in f and "y_test" in f and
                    (_nchw(f["x_test"][()], path, "x_test"), torch.from_numpy(f["y_test"][()].astype(np.int64).ravel())))
            names = f.attrs.get("classes")
        count = int(max(y.max(), test[1].max() if test else 0)) + 1
        classes = tuple(str(c) for c in names) if names is not None else class_names(count, self.num_classes, path,
                                                                                      "hdf5")
        if test:
            return DataBundle(x, y, *test, classes)
        return DataBundle.split(x, y, classes, self.test_fraction, self.seed)
