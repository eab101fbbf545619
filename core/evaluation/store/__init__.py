"""The HDF5 run file. This package is the only code that imports h5py: ``RunStore`` in :mod:`.runstore`, the
merge of per-rank shards in :mod:`.shards`, the repair of a file a failed write truncated in
:mod:`.repair`.

Schema (``advx report`` and plain h5py readers rely on it; see docs in README "Run file"):

``/`` attrs
    ``advx_schema`` (int), ``config`` (canonical JSON of the TOML), ``config_hash``,
    ``versions`` (JSON: advx, torch, every plugin), ``device``, ``created``; ``machine``,
    ``train_size`` and ``command`` (the command line that started the run); ``advx_writing`` (1
    while a process has the file open for writing, 0 once it closed it cleanly).
``/test``
    ``index`` (int64, position in the dataset's test split), ``label``, ``fold`` (k-split id).
``/models/<train label>`` attrs
    ``hash``, ``checkpoint`` (path), ``seconds``, ``spec`` (JSON).
``/adversarials/<key>``
    oblivious cache: ``x_adv`` (float32, N x C x H x W) crafted once per (trained model, attack)
    on the undefended model; attrs ``n_done``, ``seconds``, ``forwards``, ``backwards``, ``spec``.
``/cells/<key>``
    one evaluated cell. attrs: ``spec`` (JSON: train, defense, attack, mode), ``status``
    ("running" | "done"), ``n_done``, ``seconds``, ``forwards``, ``backwards``.
    datasets (length N, chunked, resizable): ``index``, ``label``, ``prediction``, ``correct``
    (bool), ``linf``, ``l2`` (perturbation norms), ``loss`` (CE of the defended output),
    and ``x_adv`` when ``save_adversarials = true``.
``/metrics/<evaluator>`` attrs
    ``tables``: JSON list of {title, columns, rows, plot}.

A shard (``<run>.shards/rank-<r>-of-<w>.h5``, one per rank of a torchrun job) has the same
layout for its contiguous sample range; root attrs ``shard_rank``, ``shard_world``,
``shard_lo``, ``shard_hi``. ``merge_shards`` appends finished groups into the run file in rank
order.

Writes are appended chunk by chunk; ``n_done`` is bumped and the file flushed after each, so
a crash loses at most the chunk in flight. Opening walks every object for one a failed write
left past the file's end (:func:`.repair.unreadable_object`) unless ``advx_writing`` says the
last writer closed the file cleanly: the walk was most of the cost of an open. A sidecar
``<file>.lock`` (flock) refuses a second writer; the writer deletes it when it closes the file
(a crash leaves it, harmlessly: the lock dies with the process).
"""
from .repair import repair_run
from .runstore import SCHEMA, RunStore, check_writable, config_of, read_arrays, stored_eof
from .shards import adopt_header, merge_shards

__all__ = ["SCHEMA", "RunStore", "adopt_header", "check_writable", "config_of", "merge_shards", "read_arrays",
           "repair_run", "stored_eof"]
