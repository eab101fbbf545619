"""Reader for the IDX format of MNIST and Fashion-MNIST (LeCun et al.), gzipped or not."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array in an IDX file: 2 zero bytes, a type byte, a rank byte, big-endian uint32 dims."""
    path = Path(path)
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(_DTYPES[raw[2]])
    count = int(np.prod(dims))
    start = 4 + 4 * ndim
    if len(raw) - start < count * dtype.itemsize:
        raise ValueError(f"{path} is truncated: header says {dims} but the file is {len(raw)} bytes")
    return np.frombuffer(raw, dtype, count, start).reshape(dims).copy()  # writable, owned


def find_idx(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz``, whichever exists."""
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None
