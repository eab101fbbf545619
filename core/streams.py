"""Per-sample random streams: a sample's draws depend on its key alone, never on its batch.

The evaluator gives every attack a :class:`SampleStreams` whose key for a sample is derived from
(run seed, cell, the sample's row in the test set). Each draw advances a per-sample counter, and
each number is a counter-based hash (splitmix64) of (key, counter, position) — so a sample sees
the same random start, squares, restarts and targets whatever the batch, chunk, seed block,
world size or free memory, and whichever other samples are still being attacked. Randomized
defences key their draws by the *content* of each input (:func:`content_keys`) and the draw's
number, so the same input gets the same draws in any batch; under attack each query of a point
takes new draw numbers (:class:`DrawLedger`), so EOT averages.

The helpers :func:`uniform`, :func:`normal`, :func:`integers` and :func:`subset` take either a
``SampleStreams`` or a plain ``torch.Generator`` (or None), so a component written against them
runs under the evaluator and standalone alike.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

import torch

_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as a signed 64-bit integer
_M1 = -4658895280553007687     # 0xBF58476D1CE4E5B9
_M2 = -7723592293110705685     # 0x94D049BB133111EB


def _srl(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic on negative numbers)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def mix64(x: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser on an int64 tensor (wrapping arithmetic): a bijective bit mixer."""
    x = (x ^ _srl(x, 30)) * _M1
    x = (x ^ _srl(x, 27)) * _M2
    return x ^ _srl(x, 31)


def derive_key(*parts: Any) -> int:
    """A 62-bit key from any JSON-able parts (run seed, cell, purpose)."""
    h = hashlib.sha256(json.dumps(list(parts), default=str).encode()).digest()
    return int.from_bytes(h[:8], "little") >> 2


def sample_keys(base: int, rows: torch.Tensor) -> torch.Tensor:
    """One key per sample: ``base`` mixed with the sample's row index."""
    return mix64(rows.to(torch.int64) * _GOLDEN + base)


class SampleStreams:
    """Independent random streams, one per sample (row) of a batch.

    ``streams[idx]`` is a view on some rows: its draws advance those rows' counters in the parent,
    so an attack that works on the samples still running keeps every sample's sequence intact.
    """

    def __init__(self, keys: torch.Tensor, counters: torch.Tensor | None = None,
                 rows: torch.Tensor | None = None) -> None:
        self.keys = keys.to(torch.int64)
        self.counters = torch.zeros_like(self.keys) if counters is None else counters
        self.rows = rows  # None: all rows of ``counters``; else the rows this view draws for

    @classmethod
    def for_rows(cls, base: int, rows: torch.Tensor) -> "SampleStreams":
        return cls(sample_keys(base, rows))

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, idx: Any) -> "SampleStreams":
        own = torch.arange(len(self.keys), device=self.keys.device) if self.rows is None else self.rows
        if isinstance(idx, torch.Tensor):
            idx = idx.to(self.keys.device)
        return SampleStreams(self.keys[idx], self.counters, own[idx].reshape(-1))

    def bits(self, per_sample: int, device: torch.device | str | None = None) -> torch.Tensor:
        """``per_sample`` fresh 64-bit words for every sample (N x per_sample), advancing counters."""
        rows = slice(None) if self.rows is None else self.rows
        count = self.counters[rows].clone()
        self.counters[rows] = count + 1
        j = torch.arange(per_sample, device=self.keys.device, dtype=torch.int64)
        state = self.keys[:, None] + mix64(count * _GOLDEN + 0x2545F491)[:, None] + (j[None, :] + 1) * _GOLDEN
        out = mix64(state)
        return out if device is None else out.to(device)

    def uniform(self, shape: Sequence[int], device: Any = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        n, rest = _split(shape, len(self))
        words = self.bits(max(1, _numel(rest)), device)
        u = _srl(words, 40).to(torch.float64) * (1.0 / (1 << 24))  # 24 random bits: exact in float32
        return u[:, :_numel(rest)].reshape(n, *rest).to(dtype)

    def normal(self, shape: Sequence[int], device: Any = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        n, rest = _split(shape, len(self))
        m = max(1, _numel(rest))
        words = self.bits(2 * m, device)
        u1 = (_srl(words[:, :m], 11).to(torch.float64) + 1.0) * (1.0 / (1 << 53))  # (0, 1]: log is finite
        u2 = _srl(words[:, m:], 11).to(torch.float64) * (1.0 / (1 << 53))
        z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2 * torch.pi * u2)  # Box-Muller
        return z[:, :_numel(rest)].reshape(n, *rest).to(dtype)

    def integers(self, low: int, high: int, shape: Sequence[int], device: Any = None) -> torch.Tensor:
        n, rest = _split(shape, len(self))
        words = self.bits(max(1, _numel(rest)), device)
        span = high - low if isinstance(high, int) else high.to(words.device, torch.int64) - low  # no host copy
        out = _srl(words, 1) % span + low
        return out[:, :_numel(rest)].reshape(n, *rest)


def _numel(rest: Sequence[int]) -> int:
    m = 1
    for d in rest:
        m *= int(d)
    return m


def _split(shape: Sequence[int], n: int) -> tuple[int, tuple[int, ...]]:
    shape = tuple(int(s) for s in shape)
    if not shape or shape[0] != n:
        raise ValueError(f"per-sample draws need a shape led by the {n} samples, got {shape}")
    return shape[0], shape[1:]


def uniform(g: Any, shape: Sequence[int], like: torch.Tensor | None = None) -> torch.Tensor:
    """U[0, 1) of ``shape`` (first axis: samples), on ``like``'s device and dtype."""
    if isinstance(g, SampleStreams):
        out = g.uniform(shape, None if like is None else like.device)
    else:
        out = torch.rand(tuple(shape), generator=g, device=_device(g))
    return out if like is None else out.to(like)


def _device(g: Any) -> torch.device | None:
    """Where a torch.Generator draws: a CUDA generator draws on its GPU (no host round trip)."""
    return None if g is None else g.device


def normal(g: Any, shape: Sequence[int], like: torch.Tensor | None = None) -> torch.Tensor:
    """N(0, 1) of ``shape`` (first axis: samples)."""
    if isinstance(g, SampleStreams):
        out = g.normal(shape, None if like is None else like.device)
    else:
        out = torch.randn(tuple(shape), generator=g, device=_device(g))
    return out if like is None else out.to(like)


def integers(g: Any, low: int, high: int | torch.Tensor, shape: Sequence[int],
             device: Any = None) -> torch.Tensor:
    """Integers in [low, high) of ``shape`` (first axis: samples); ``high`` may be per sample (N,)."""
    if isinstance(g, SampleStreams):
        h = high.view(-1, *([1] * (len(shape) - 1))).to(g.keys.device) if isinstance(high, torch.Tensor) else high
        out = g.integers(low, h, shape)
    elif isinstance(high, torch.Tensor):
        span = (high.cpu().view(-1, *([1] * (len(shape) - 1))) - low).to(torch.float64)
        out = (torch.rand(tuple(shape), generator=g, dtype=torch.float64, device=_device(g)) * span.to(_device(g) or "cpu")
               ).floor().to(torch.int64) + low
    else:
        out = torch.randint(low, high, tuple(shape), generator=g, device=_device(g))
    return out if device is None else out.to(device)


def words(g: Any, n: int, k: int, device: Any = None) -> torch.Tensor:
    """``k`` random non-negative 63-bit integers per sample (N x k int64), from one hash per sample:
    an attack that needs several small draws per step (a window's corner, signs per channel)
    takes them from one call instead of one call each."""
    if isinstance(g, SampleStreams):
        if len(g) != n:
            raise ValueError(f"per-sample draws need a shape led by the {len(g)} samples, got {n}")
        return _srl(g.bits(k, device), 1)
    out = torch.randint(0, 1 << 62, (n, k), generator=g, device=_device(g))
    return out if device is None else out.to(device)


def subset(g: Any, idx: Any) -> Any:
    """The streams of rows ``idx`` (a plain generator is shared by every row)."""
    return g[idx] if isinstance(g, SampleStreams) else g


_POSITION_CACHE: dict[tuple[int, str], torch.Tensor] = {}


def content_keys(x: torch.Tensor, base: int) -> torch.Tensor:
    """A key per input row from its exact pixel values (and ``base``): the same image gets the same
    key in any batch. Integer arithmetic only (pixels quantised to 2^-24), so the key is exact and
    independent of reduction order on every device."""
    flat = x.detach().flatten(1)
    m = flat.shape[1]
    cache_key = (m, str(flat.device))
    weights = _POSITION_CACHE.get(cache_key)
    if weights is None:
        weights = mix64(torch.arange(m, device=flat.device, dtype=torch.int64) * _GOLDEN + 12345) | 1
        _POSITION_CACHE[cache_key] = weights
    q = torch.round(flat.float() * (1 << 24)).to(torch.int64)
    return mix64((q * weights).sum(1) + base)


def draw_streams(x: torch.Tensor, seed: int, start: int | torch.Tensor, k: int) -> SampleStreams:
    """Streams for draws ``start … start + k − 1`` of a randomized defence on the batch ``x``
    repeated ``k`` times (copy d of image i draws from (seed, image i's content, draw start_i + d)):
    the draws an image gets do not depend on the batch it arrives in, nor on how many draws
    share a pass. ``start`` is one number or one per image (:class:`DrawLedger`)."""
    keys = content_keys(x, seed)
    first = torch.as_tensor(start, dtype=torch.int64, device=keys.device).expand(len(keys))
    draw = (first[None, :] + torch.arange(k, device=keys.device, dtype=torch.int64)[:, None]).flatten()
    return SampleStreams(mix64(keys.repeat(k) ^ mix64(draw * _GOLDEN + 0x5EED)))


#: mixed into the seed of draws taken while attacked: an evaluation draw is never one an attack saw
ATTACK_SALT = 0x5A17_A77A_C4ED


class DrawLedger:
    """Which draws a randomized module has handed out, per input, while it is attacked.

    Evaluation (``repeats``) always takes draws 0 … repeats − 1 under the run's seed, so an image
    gets one prediction in every cell. Under attack every call takes *new* draws, under a salted
    seed: the n-th query of one point gets draws n·k … n·k + k − 1, so an attack that asks for
    the gradient at one point 20 times (EOT) averages 20 different draws instead of one draw 20
    times. A point is known by its content (:func:`content_keys`), so the draws a sample gets
    depend on its own queries only — never on its batch, its chunk or the other samples.
    ``reset`` (at every reseed) forgets the queries.
    """

    def __init__(self) -> None:
        self.taken: dict[int, int] = {}

    def reset(self) -> None:
        self.taken.clear()

    def starts(self, x: torch.Tensor, seed: int, k: int, attacking: bool) -> tuple[int, torch.Tensor | int]:
        """(the seed the draws use, the first draw of each row of ``x``), ``k`` draws per row."""
        if not attacking:
            return seed, 0
        salted = seed ^ ATTACK_SALT
        keys = content_keys(x, salted).tolist()
        first = [self.taken.get(c, 0) for c in keys]
        for c, f in zip(keys, first):
            self.taken[c] = f + k
        return salted, torch.tensor(first, dtype=torch.int64, device=x.device)
