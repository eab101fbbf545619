"""Public H&E histopathology sets: stand-ins for paper 003's HIST patches, which are not distributed.

- ``pcam``: PatchCamelyon (Veeling et al., MICCAI 2018) — 96x96 patches of lymph-node sections,
  binary (metastatic tissue in the centre or not), 262,144 train / 32,768 test. torchvision's
  layout: ``root/pcam/camelyonpatch_level_2_split_{train,test}_{x,y}.h5``.
- ``pathmnist``: MedMNIST v2's PathMNIST (Yang et al., Scientific Data 2023; from Kather et al.'s
  NCT-CRC-HE-100K) — colorectal-cancer tissue, 9 classes, 89,996 train / 10,004 val / 7,180 test,
  sides 28, 64, 128 or 224: ``root/pathmnist.npz`` or ``root/pathmnist_<size>.npz``.

Both read the files themselves (h5py; numpy with ``allow_pickle=False``, so a data file can never
run code) and fetch them from Zenodo with ``download = true`` (``mirror`` points elsewhere).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import ClassVar

import attrs
import numpy as np
import torch

from advx.errors import DatasetNotFoundError

from .bundle import DataBundle
from .download import fetch_url

PCAM_MIRROR = "https://zenodo.org/records/2546921/files"
MEDMNIST_MIRROR = "https://zenodo.org/records/10519652/files"
PATHMNIST_CLASSES = ("adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle",
                     "normal colon mucosa", "cancer-associated stroma", "colorectal adenocarcinoma epithelium")

_root = attrs.field(default="data", converter=str)
_download = attrs.field(default=False, validator=attrs.validators.instance_of(bool))


def resize_uint8(x: torch.Tensor, size: int | None, chunk: int = 1024) -> torch.Tensor:
    """N x C x H x W uint8 images resized to size x size (bilinear, antialiased), in chunks so a
    large set never needs a float copy of itself."""
    if size is None or x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for s in range(0, x.shape[0], chunk):
        f = torch.nn.functional.interpolate(x[s:s + chunk].float(), size=(size, size), mode="bilinear",
                                            antialias=True, align_corners=False)
        out[s:s + chunk] = f.round().clamp(0, 255).to(torch.uint8)
    return out


@attrs.frozen
class PCam:
    """PatchCamelyon as HDF5 files (torchvision's layout). ``max_train`` reads a seeded random
    subset of the training rows straight from the file (the full set is 7 GB of pixels);
    ``size`` resizes (128 matches HIST); ``download = true`` fetches the gzipped files."""

    name: ClassVar[str] = "pcam"
    root: str = _root
    size: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(8)))
    max_train: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(1)))
    seed: int = 0
    download: bool = _download
    mirror: str = PCAM_MIRROR

    def _path(self, split: str, part: str) -> Path:
        return Path(self.root) / "pcam" / f"camelyonpatch_level_2_split_{split}_{part}.h5"

    def load(self) -> DataBundle:
        paths = {(s, p): self._path(s, p) for s in ("train", "test") for p in ("x", "y")}
        for path in paths.values():
            if not path.is_file() and self.download:
                fetch_url(f"{self.mirror.rstrip('/')}/{path.name}.gz", path, gunzip=True)
            if not path.is_file():
                raise DatasetNotFoundError(
                    f"pcam: {path} not found. Get PatchCamelyon's HDF5 files ({PCAM_MIRROR}) into {path.parent} "
                    f"or set data.download = true")
        rows = None
        if self.max_train is not None:
            n = self._count(paths["train", "y"])
            if self.max_train < n:
                g = torch.Generator().manual_seed(self.seed)
                rows = np.sort(torch.randperm(n, generator=g)[: self.max_train].numpy())
        x, y = self._read(paths["train", "x"], paths["train", "y"], rows)
        xt, yt = self._read(paths["test", "x"], paths["test", "y"], None)
        return DataBundle(x, y, xt, yt, ("no tumour", "tumour"))

    @staticmethod
    def _count(path: Path) -> int:
        return int(_h5_array(path, "y", shape_only=True)[0])

    def _read(self, xpath: Path, ypath: Path, rows: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
        x = _h5_array(xpath, "x", rows=rows)
        y = _h5_array(ypath, "y", rows=rows).reshape(-1)
        if x.ndim != 4 or x.shape[3] != 3 or x.dtype != np.uint8:
            raise DatasetNotFoundError(f"pcam: {xpath}:x must be N x H x W x 3 uint8, got {x.shape} {x.dtype}")
        if len(y) != len(x):
            raise DatasetNotFoundError(f"pcam: {ypath} holds {len(y)} labels for {len(x)} images in {xpath}")
        if len(y) and not set(np.unique(y).tolist()) <= {0, 1}:
            raise DatasetNotFoundError(f"pcam: {ypath}:y must hold 0/1 labels")
        images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        return resize_uint8(images, self.size), torch.from_numpy(y.astype(np.int64))


def _h5_array(path: Path, key: str, rows: np.ndarray | None = None, shape_only: bool = False):
    """``key`` of an HDF5 file (all rows, or the sorted ``rows``), any failure a one-line error."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if key not in f:
                raise DatasetNotFoundError(f"{path}: no dataset {key!r} (it has {sorted(f.keys())})")
            if shape_only:
                return f[key].shape
            return f[key][()] if rows is None else f[key][rows]
    except OSError as e:  # truncated or not HDF5
        raise DatasetNotFoundError(f"{path}: not a readable HDF5 file ({e})") from None


@attrs.frozen
class PathMNIST:
    """MedMNIST's PathMNIST from its ``.npz`` file (no medmnist package needed). ``size`` picks the
    file (28 → pathmnist.npz, else pathmnist_<size>.npz); ``include_val`` adds MedMNIST's
    validation split to training; ``download = true`` fetches the file from Zenodo."""

    name: ClassVar[str] = "pathmnist"
    root: str = _root
    size: int = attrs.field(default=28, validator=attrs.validators.in_((28, 64, 128, 224)))
    include_val: bool = False
    download: bool = _download
    mirror: str = MEDMNIST_MIRROR

    def load(self) -> DataBundle:
        fname = "pathmnist.npz" if self.size == 28 else f"pathmnist_{self.size}.npz"
        path = Path(self.root) / fname
        if not path.is_file() and self.download:
            fetch_url(f"{self.mirror.rstrip('/')}/{fname}", path)
        if not path.is_file():
            raise DatasetNotFoundError(f"pathmnist: {path} not found. Get {fname} from MedMNIST ({MEDMNIST_MIRROR}) "
                                       f"into {path.parent} or set data.download = true")
        keys = [f"{s}_{part}" for s in ("train", "val", "test") for part in ("images", "labels")]
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in keys if k not in z.files]
                if missing:
                    raise DatasetNotFoundError(f"pathmnist: {path} lacks the array {missing[0]!r}")
                parts = {k: z[k] for k in keys}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:  # ValueError: pickled objects
            raise DatasetNotFoundError(f"pathmnist: {path} is not a readable MedMNIST .npz file ({e})") from None
        split = {s: self._split(path, parts[f"{s}_images"], parts[f"{s}_labels"]) for s in ("train", "val", "test")}
        x, y = split["train"]
        if self.include_val:
            x, y = torch.cat([x, split["val"][0]]), torch.cat([y, split["val"][1]])
        return DataBundle(x, y, *split["test"], PATHMNIST_CLASSES)

    def _split(self, path: Path, images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if images.ndim != 4 or images.shape[1:] != (self.size, self.size, 3) or images.dtype != np.uint8:
            raise DatasetNotFoundError(f"pathmnist: {path} images must be N x {self.size} x {self.size} x 3 uint8, "
                                       f"got {images.shape} {images.dtype}")
        y = labels.reshape(-1).astype(np.int64)
        if len(y) != len(images) or (len(y) and (y.min() < 0 or y.max() >= len(PATHMNIST_CLASSES))):
            raise DatasetNotFoundError(f"pathmnist: {path} labels must be one of 0..8 per image")
        return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), torch.from_numpy(y)
