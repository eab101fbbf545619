"""Repair a run file that a failed write (disk full, a file-size limit) left truncated: keep every
finished cell whose bytes all reached the disk, drop the rest for the next run to recompute."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import h5py
import numpy as np

from advx.errors import StoreError


def stored_eof(exc: BaseException) -> int | None:
    """HDF5's "truncated file: eof = A, ..., stored_eof = B": the size the file should have."""
    m = re.search(r"truncated file.*stored_eof = (\d+)", str(exc))
    return int(m.group(1)) if m else None


def unreadable_object(f: h5py.File) -> str | None:
    """The first group or dataset whose header or attributes cannot be read (a write that failed
    half-way can leave the file opening cleanly with an object past its end), or None."""
    bad: list[str] = []

    def visit(name: str) -> bool | None:  # a non-None return ends the walk
        try:
            dict(f[name].attrs)
        except (KeyError, OSError, RuntimeError) as exc:
            bad.append(f"{name}: {str(exc).splitlines()[0][:120]}")
            return True
        return None

    try:
        dict(f.attrs)
        f.visit(visit)
    except (KeyError, OSError, RuntimeError) as exc:
        bad.append(str(exc).splitlines()[0][:120])
    return bad[0] if bad else None


class DamagedFile(OSError):
    """A run file that opens but holds an object a failed write left unreadable."""


def repair_run(path: Path) -> tuple[int, int, Path]:
    """Rewrite a run file truncated by a failed write, keeping every finished cell that reads back
    whole (its per-sample ``index`` equal to the run's test index) and everything else readable.
    Unfinished or damaged cells are left out and recomputed on the next run. The damaged file is
    kept beside it; returns (cells kept, cells dropped, the damaged file's path)."""
    path = Path(path)
    backup = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    shutil.copy2(path, backup)
    padded = path.with_name(path.name + ".padded")
    shutil.copy2(path, padded)
    try:
        real_eof = padded.stat().st_size  # bytes that reached the disk; anything stored past them is lost
        with open(padded, "rb+") as fh:
            try:
                h5py.File(padded, "r").close()
            except OSError as exc:
                eof = stored_eof(exc)
                if eof is None:
                    raise StoreError(f"{path}: not repairable ({exc})") from None
                fh.truncate(eof)  # zeros where the lost writes were: HDF5 can open it again
        kept = dropped = 0
        fresh = path.with_name(path.name + ".repaired")
        with h5py.File(padded, "r") as src, h5py.File(fresh, "w") as dst:
            dst.attrs.update(dict(src.attrs))
            test = _readable(src, "test", real_eof)
            index = src["test/index"][()] if test else None
            for top in src:
                if top == "cells" or not _readable(src, top, real_eof):
                    continue
                src.copy(src[top], dst, name=top)
            if index is not None and "shard_lo" in src.attrs:  # one shard's file holds its own rows
                index = index[int(src.attrs["shard_lo"]):int(src.attrs["shard_hi"])]
            for name in src.get("cells", {}):
                g = f"cells/{name}"
                if index is not None and _finished_and_whole(src, g, index, real_eof):
                    dst.require_group("cells")
                    src.copy(src[g], dst["cells"], name=name)
                    kept += 1
                else:
                    dropped += 1
        fresh.replace(path)
    finally:
        padded.unlink(missing_ok=True)
    return kept, dropped, backup


def _readable(f: h5py.File, name: str, eof: int) -> bool:
    """Every dataset under ``name`` reads, and all its bytes lie in the part of the file that was
    really written (a padded region reads back as zeros, not as an error)."""
    try:
        bad = f[name].visititems(lambda _, o: None if not isinstance(o, h5py.Dataset) or _whole(o, eof) else True)
        return not bad
    except Exception:  # any HDF5 read error means "not whole"
        return False


def _whole(ds: h5py.Dataset, eof: int) -> bool:
    ds[()]
    if ds.chunks is None:
        offset = ds.id.get_offset()
        return offset is None or offset + ds.id.get_storage_size() <= eof  # None: compact or empty
    needed = int(np.prod([-(-n // c) for n, c in zip(ds.shape, ds.chunks)]))
    if ds.id.get_num_chunks() < needed:  # a chunk never written reads back as the fill value (zeros)
        return False
    for i in range(ds.id.get_num_chunks()):
        info = ds.id.get_chunk_info(i)
        if info.byte_offset + info.size > eof:
            return False
    return True


def _finished_and_whole(f: h5py.File, g: str, index: np.ndarray, eof: int) -> bool:
    try:
        a = f[g].attrs
        n = int(a.get("n_done", 0))
        return (a.get("status") == "done" and _readable(f, g, eof) and
                np.array_equal(f[g]["index"][:n], index[:n]) and n == len(index))
    except Exception:
        return False
