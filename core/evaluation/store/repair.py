"""Repair a run file that a failed write (disk full, a file-size limit) left truncated: keep every
finished cell whose bytes all reached the disk, drop the rest for the next run to recompute."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np

from advx.errors import StoreError


def truncation(exc: BaseException) -> tuple[int, int] | None:
    """HDF5's "truncated file: eof = A, ..., stored_eof = B": (bytes left, the size the file should have)."""
    m = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", str(exc))
    return (int(m.group(1)), int(m.group(2))) if m else None


def stored_eof(exc: BaseException) -> int | None:
    """The size a truncated file should have (see :func:`truncation`)."""
    cut = truncation(exc)
    return cut[1] if cut else None


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


class Unrecoverable(StoreError):
    """Nothing in a damaged run file can be read back: its header (the config it belongs to) is lost."""


def damaged_copy(path: Path) -> Path:
    """Where the damaged original is kept after a repair: one copy per run file, replaced by the
    next repair, so retries do not pile copies up."""
    return path.with_name(f"{path.name}.damaged")


def repair_run(path: Path) -> tuple[int, int, Path]:
    """Rewrite a damaged run file (a failed write, a copy cut short) keeping the header and every
    finished cell that reads back whole (its per-sample ``index`` equal to the run's test index);
    unfinished or unreadable cells are left out and recomputed by the next run. The damaged
    original is kept as ``<file>.damaged``; returns (cells kept, cells dropped, that path).

    Raises :class:`Unrecoverable` (one line, file untouched) when not even the header reads."""
    path = Path(path)
    padded = path.with_name(path.name + ".padded")
    fresh = path.with_name(path.name + ".repaired")
    try:
        shutil.copy2(path, padded)
        real_eof = padded.stat().st_size  # bytes that reached the disk; anything stored past them is lost
        src = _open_padded(padded, path)
        with src, h5py.File(fresh, "w") as dst:
            header = _header(src)
            if header is None:
                raise Unrecoverable(f"{path}: nothing can be recovered (its header, the config the run belongs to, "
                                    "is lost); re-run with --overwrite to start afresh, or delete it")
            dst.attrs.update(header)
            test = _readable(src, "test", real_eof)
            index = src["test/index"][()] if test else None
            for top in _names(src):
                if top != "cells" and _readable(src, top, real_eof):
                    _copy(src, top, dst, top)
            if index is not None and "shard_lo" in header:  # one shard's file holds its own rows
                index = index[int(header["shard_lo"]):int(header["shard_hi"])]
            kept = dropped = 0
            for name in _names(src, "cells"):
                g = f"cells/{name}"
                whole = index is not None and _finished_and_whole(src, g, index, real_eof)
                if whole and _copy(src, g, dst, g):
                    kept += 1
                else:
                    dropped += 1
        backup = damaged_copy(path)
        path.replace(backup)
        fresh.replace(path)
    except StoreError:
        raise
    except Exception as exc:  # any other HDF5 failure while salvaging: say so in one line
        raise Unrecoverable(f"{path}: not repairable ({str(exc).splitlines()[0][:160]}); re-run with --overwrite "
                            "to start afresh, or delete it") from None
    finally:
        padded.unlink(missing_ok=True)
        fresh.unlink(missing_ok=True)
    return kept, dropped, backup


def _copy(src: h5py.File, name: str, dst: h5py.File, to: str) -> bool:
    """Copy one group or dataset; one that fails half-way is removed again and reported False."""
    try:
        dst.require_group(str(Path(to).parent))
        src.copy(src[name], dst, name=to)
        return True
    except Exception:
        if to in dst:
            del dst[to]
        return False


def _open_padded(padded: Path, path: Path) -> h5py.File:
    """Open a copy of the damaged file, first padding it with zeros to the size its superblock
    records when it was cut short (HDF5 refuses a file shorter than that)."""
    try:
        return h5py.File(padded, "r")
    except OSError as exc:
        eof = stored_eof(exc)
        if eof is None:
            raise Unrecoverable(f"{path}: nothing can be recovered (not an HDF5 file any more: "
                                f"{str(exc).splitlines()[0][:120]}); re-run with --overwrite to start afresh, "
                                "or delete it") from None
    with open(padded, "rb+") as fh:
        fh.truncate(eof)  # zeros where the lost writes were: HDF5 can open it again
    return h5py.File(padded, "r")


def _header(f: h5py.File) -> dict | None:
    """The root attributes if they read and name an advx run (schema, config, its hash), else None."""
    try:
        attrs = dict(f.attrs)
    except Exception:
        return None
    return attrs if {"advx_schema", "config", "config_hash"} <= set(attrs) else None


def _names(f: h5py.File, group: str = "/") -> list[str]:
    """The members of ``group`` that can be listed (a damaged group lists nothing)."""
    try:
        return list(f[group])
    except Exception:
        return []


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
