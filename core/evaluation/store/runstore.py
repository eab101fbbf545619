"""``RunStore``: one HDF5 run file (schema in the package docstring), with its lock and the
chunked appends that make a crash lose at most the chunk in flight."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from advx.errors import AdvxWarning, StoreError, StoreWriteError

from .repair import DamagedFile, Unrecoverable, repair_run, stored_eof, truncation, unreadable_object

SCHEMA = 1


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every top-level dataset of an HDF5 file as numpy arrays (for the ``hdf5`` dataset)."""
    try:
        with h5py.File(path, "r") as f:
            return {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}
    except OSError as exc:
        raise StoreError(f"{path}: not a readable HDF5 file ({exc})") from None


def check_writable(path: Path) -> None:
    """A run file can be created at ``path`` (its folder made if needed), or a one-line StoreError
    saying why not: a file where a folder should be, no permission, a read-only or virtual file system."""
    path = Path(path)
    if path.is_dir():
        raise StoreError(f"{path} is a folder; give a file name for the run, e.g. {path / 'run.h5'}")
    for parent in [*reversed(path.parents)]:
        if parent.exists() and not parent.is_dir():
            raise StoreError(f"cannot write the run file {path}: {parent} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder {path.parent} for the run file: {exc.strerror or exc}") from None
    if not os.access(path.parent, os.W_OK):
        raise StoreError(f"cannot write the run file {path}: no permission to write in {path.parent}")


def _is_h5py_teardown(exc: BaseException | None) -> bool:
    return isinstance(exc, RuntimeError) and "decrement id ref count" in str(exc)


def _quiet_h5py_teardown() -> None:
    """After a failed write every h5py handle of the file errors as it is freed (printed through
    both hooks by Cython); the StoreWriteError says it once instead. Other errors print as usual."""
    if getattr(sys.unraisablehook, "_advx", False):
        return
    default_unraisable, default_except = sys.unraisablehook, sys.excepthook

    def unraisable(u) -> None:
        if not _is_h5py_teardown(u.exc_value):
            default_unraisable(u)

    def excepthook(kind, value, tb) -> None:
        if not _is_h5py_teardown(value):
            default_except(kind, value, tb)

    unraisable._advx = True
    sys.unraisablehook, sys.excepthook = unraisable, excepthook


def _os_reason(exc: BaseException) -> str:
    """The OS's words inside an HDF5 error ("File too large", "No space left on device")."""
    text = str(exc)
    m = re.search(r"error message = '([^']+)'", text)
    return m.group(1) if m else text.splitlines()[0][:160]


#: root attribute: 1 while a process has the file open for writing, 0 once it closed it cleanly
WRITING = "advx_writing"


def set_mark(f: h5py.File, value: int) -> None:
    """Set the open-for-writing mark in place (``modify``: same type and shape, so the header's
    layout does not move; deleting and re-creating it did, and a copy of such a file cut short
    then sent HDF5 into an endless loop reading its zero-padded attributes)."""
    if WRITING in f.attrs:
        f.attrs.modify(WRITING, np.int8(value))
    else:
        f.attrs.create(WRITING, np.int8(value))


def closed_cleanly(f: h5py.File) -> bool:
    """The file's last writer closed it normally (every write reached the disk); files from before
    the mark, or a mark that cannot be read, count as not."""
    try:
        return int(f.attrs.get(WRITING, 1)) == 0
    except (KeyError, OSError, RuntimeError, TypeError, ValueError):
        return False


class RunStore:
    """Read/write access to one run file (use as a context manager)."""

    def __init__(self, path: str | Path, *, mode: str = "a", fresh: bool = False) -> None:
        self.path = Path(path)
        self.mode = mode
        self.fresh = fresh  # --overwrite: whatever the file holds (even a damaged one) is replaced
        self._lock_fh = None
        self.f: h5py.File | None = None

    # ------------------------------------------------------------------ open / close
    def __enter__(self) -> "RunStore":
        if self.mode != "r":
            check_writable(self.path)
            _quiet_h5py_teardown()
            self._lock()
            if self.fresh:
                self.path.unlink(missing_ok=True)
        try:
            self._open()
        except Unrecoverable:
            self._release()
            raise
        except (OSError, KeyError, RuntimeError, ValueError) as exc:
            self._release()
            if self.f is not None:
                with contextlib.suppress(Exception):
                    self.f.close()
                self.f = None
            cut = truncation(exc)
            reason = f"cut short: {cut[0]} of its {cut[1]} bytes are left" if cut else str(exc).splitlines()[0][:160]
            if self.mode == "r" and (isinstance(exc, DamagedFile) or cut is not None):
                raise StoreError(f"{self.path} is damaged ({reason}); `advx repair {self.path}` keeps what "
                                 f"can still be read, or re-run the same command to repair and resume") from None
            fix = "" if self.mode == "r" else "; delete it or replace it with --overwrite"
            raise StoreError(f"{self.path}: not a valid HDF5 run file ({reason}){fix}") from None
        if self.mode == "r" or set(self.f.attrs) - {WRITING} or len(self.f):
            self._check_schema()
        if self.mode != "r":  # on disk until a clean close: a write that dies leaves it set
            with self._writing():
                set_mark(self.f, 1)
            self.flush()
        return self

    def _open(self) -> None:
        """Open the file; in write mode repair one a failed write damaged (keeping what is whole)."""
        if self.mode == "r" and not self.path.is_file():
            raise StoreError(f"{self.path}: no such run file")
        try:
            self.f = h5py.File(self.path, self.mode, locking=False)
            # a failed write can leave a file that opens but holds an object past its end: walk
            # every object, unless the last writer closed it cleanly (the walk is most of an open)
            damage = None if closed_cleanly(self.f) else unreadable_object(self.f)
        except OSError as exc:
            if self.mode == "r" or stored_eof(exc) is None:
                raise
            damage = str(exc)
        if damage is None:
            return
        if self.f is not None:
            self.f.close()
            self.f = None
        if self.mode == "r":
            raise DamagedFile(damage)
        kept, dropped, backup = repair_run(self.path)  # a write failed last time: keep what is whole
        warnings.warn(f"{self.path} was damaged; kept {kept} finished cells, {dropped} will be recomputed "
                      f"(the damaged file is kept as {backup})", AdvxWarning, stacklevel=3)
        self.f = h5py.File(self.path, self.mode, locking=False)

    def _check_schema(self) -> None:
        assert self.f is not None
        if "advx_schema" not in self.f.attrs:
            keys = list(self.f.attrs) or list(self.f)
            self.close(mark=False)  # not ours: leave it as it was
            raise StoreError(f"{self.path}: not an advx run file (no advx_schema attribute; holds {keys[:5]})")
        if int(self.f.attrs["advx_schema"]) > SCHEMA:
            self.close(mark=False)
            raise StoreError(f"{self.path}: written by a newer advx (schema {int(self.f.attrs['advx_schema'])})")

    def _lock(self) -> None:
        """Take ``<file>.lock`` (flock). The holder deletes it on release, so a waiter that got a
        lock on a file already deleted retries on the new one: no .lock is left after a run."""
        lock = Path(str(self.path) + ".lock")
        while True:
            try:
                fh = open(lock, "a")
            except OSError as exc:
                raise StoreError(f"cannot write the run file {self.path}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                raise StoreError(f"{self.path} is being written by another advx process "
                                 f"(lock {lock} is held); wait for it or use --out") from None
            try:
                same = os.fstat(fh.fileno()).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._lock_fh = fh
                return
            fh.close()  # the holder released and deleted it between our open and flock: take the new one

    def _release(self) -> None:
        if self._lock_fh is not None:
            with contextlib.suppress(OSError):
                os.unlink(str(self.path) + ".lock")  # while still held: see _lock
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def close(self, mark: bool = True) -> None:
        """Close; a file opened for writing is flushed whole first, then marked cleanly closed
        (``mark``), so the next open can skip the walk for objects a failed write left broken."""
        if self.f is not None and self.mode != "r" and mark:
            with self._writing():
                self.f.flush()  # everything on disk before the mark says so
                set_mark(self.f, 0)
        if self.f is not None:
            self.f.close()
            self.f = None
        self._release()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flush(self) -> None:
        assert self.f is not None
        with self._writing():
            self.f.flush()

    @contextlib.contextmanager
    def _writing(self):
        """Turn a failed write into one StoreWriteError naming the file and the OS's reason, and
        drop the broken HDF5 handle (closing it normally can crash the interpreter)."""
        try:
            yield
        except (OSError, RuntimeError) as exc:
            reason = _os_reason(exc)
            f, self.f = self.f, None
            with contextlib.suppress(Exception):
                f.close()
            self._release()
            raise StoreWriteError(f"writing the run file {self.path} failed ({reason}); every finished cell is "
                                  f"kept: free space, then re-run the same command to resume") from None

    # ------------------------------------------------------------------ header
    def initialize(self, config_text: str, config_hash: str, versions: dict[str, str], device: str,
                   *, overwrite: bool = False) -> bool:
        """Stamp a new file, or check an existing one was written by the same config.

        Returns True when the file already held results (a resume).
        """
        assert self.f is not None
        if "advx_schema" in self.f.attrs:
            if self.f.attrs["config_hash"] == config_hash:
                return True
            if not overwrite:
                other = self.path.with_name(f"{self.path.stem}-{config_hash[:6]}{self.path.suffix}")
                what = "a different config"
                if self.f.attrs["config"] == config_text:  # same config: a weights file or plugin code changed
                    old = json.loads(self.f.attrs["versions"])
                    changed = sorted(k.removesuffix(" source") for k, v in versions.items()
                                     if k.endswith(" source") and old.get(k) != v)
                    what = (f"the same config made by other code of {', '.join(changed)}" if changed
                            else "the same config with other weights files")
                raise StoreError(f"{self.path} holds a run of {what}; keep both with --out {other}, "
                                 "or replace it with --overwrite")
            for k in list(self.f):
                del self.f[k]
        with self._writing():
            self.f.attrs.update({"advx_schema": SCHEMA, "config": config_text, "config_hash": config_hash,
                                 "versions": json.dumps(versions), "device": device,
                                 "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
        self.flush()
        return False

    def header(self) -> dict[str, Any]:
        assert self.f is not None
        a = self.f.attrs
        return {"config": json.loads(a["config"]), "config_hash": a["config_hash"],
                "versions": json.loads(a["versions"]), "device": a["device"], "created": a["created"],
                # runs made before 2026-12-05 lack these two, before 2026-12-07 the command
                "machine": a.get("machine"), "command": a.get("command"),
                "train_size": int(a["train_size"]) if "train_size" in a else None}

    # ------------------------------------------------------------------ generic groups
    def group(self, path: str) -> h5py.Group:
        assert self.f is not None
        return self.f.require_group(path)

    def has(self, path: str) -> bool:
        assert self.f is not None
        return path in self.f

    def attrs(self, path: str) -> dict[str, Any]:
        assert self.f is not None
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.f[path].attrs.items()}

    def set_attrs(self, path: str, **values: Any) -> None:
        with self._writing():
            g = self.group(path)
            for k, v in values.items():
                g.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v
        self.flush()

    def write_array(self, path: str, array: np.ndarray) -> None:
        assert self.f is not None
        with self._writing():
            if path in self.f:
                del self.f[path]
            self.f.create_dataset(path, data=array)

    def read(self, path: str) -> np.ndarray:
        assert self.f is not None
        return self.f[path][()]

    def names(self, path: str) -> list[str]:
        assert self.f is not None
        return list(self.f[path]) if path in self.f else []

    # ------------------------------------------------------------------ chunked per-sample data
    def n_done(self, path: str) -> int:
        assert self.f is not None
        return int(self.f[path].attrs.get("n_done", 0)) if path in self.f else 0

    def append(self, path: str, arrays: dict[str, np.ndarray], *, chunk: int, extra_attrs: dict[str, Any]) -> None:
        """Append one chunk of per-sample arrays to group ``path``, then bump ``n_done`` and flush.

        Arrays past ``n_done`` (left by a crash mid-chunk) are overwritten, never duplicated.
        """
        with self._writing():
            self._append(path, arrays, chunk, extra_attrs)
        self.flush()

    def _append(self, path: str, arrays: dict[str, np.ndarray], chunk: int, extra_attrs: dict[str, Any]) -> None:
        g = self.group(path)
        start = int(g.attrs.get("n_done", 0))
        n = len(next(iter(arrays.values())))
        for name, arr in arrays.items():
            arr = np.asarray(arr)
            if name not in g:
                g.create_dataset(name, shape=(0, *arr.shape[1:]), maxshape=(None, *arr.shape[1:]),
                                 dtype=arr.dtype, chunks=(max(1, min(chunk, 4096)), *arr.shape[1:]))
            ds = g[name]
            if ds.shape[0] < start + n:
                ds.resize(start + n, axis=0)
            ds[start:start + n] = arr
        for k, v in extra_attrs.items():
            g.attrs[k] = g.attrs.get(k, 0) + v if isinstance(v, (int, float)) and k in g.attrs else v
        g.attrs["n_done"] = start + n

    def read_rows(self, path: str, name: str, start: int, stop: int) -> np.ndarray:
        assert self.f is not None
        return self.f[path][name][start:stop]

    def cell_arrays(self, path: str) -> dict[str, np.ndarray]:
        assert self.f is not None
        g = self.f[path]
        n = int(g.attrs.get("n_done", 0))
        return {k: g[k][:n] for k in g if isinstance(g[k], h5py.Dataset) and k != "x_adv"}


def config_of(path: Path) -> str:
    """The config text a run file (or shard) was written with."""
    with RunStore(path, mode="r") as s:
        assert s.f is not None
        return str(s.f.attrs["config"])
