"""Square Attack — Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient
black-box adversarial attack via random search", ECCV 2020 (https://arxiv.org/abs/1912.00049),
Algorithms 1-3."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import attrs
import torch

from advx.api import AttackBase, report_progress, sample_rows, streams

from .ops import flat_norm, other_max, project_l1


def fraction_schedule(p_init: float, i: int, queries: int) -> float:
    """Fraction of pixels a square covers at iteration ``i``: halved at 10, 50, 200, 500, 1000,
    2000, 4000, 6000, 8000 of 10,000 iterations, rescaled to the budget (Section 4 / App. A)."""
    it = int(i / queries * 10000)
    halvings = sum(it > b for b in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))
    return p_init / 2 ** halvings


def margin(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Margin loss on logits, minimised by the search; ≤ 0 means success."""
    logits = logits.float()
    if target is None:
        return logits.gather(1, y[:, None]).squeeze(1) - other_max(logits, y)
    return other_max(logits, target) - logits.gather(1, target[:, None]).squeeze(1)


def window_masks(drawn: torch.Tensor, h: int, w: int, s: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One random s x s window per sample from two of its words (N x 2, ``streams.words``):
    (mask N x 1 x H x W, row offset, column offset)."""
    device = drawn.device
    top = drawn[:, 0] % (h - s + 1)
    left = drawn[:, 1] % (w - s + 1)
    rows = torch.arange(h, device=device).view(1, h, 1) - top.view(-1, 1, 1)
    cols = torch.arange(w, device=device).view(1, 1, w) - left.view(-1, 1, 1)
    inside = (rows >= 0) & (rows < s) & (cols >= 0) & (cols < s)
    return inside.unsqueeze(1), top, left


def bit_signs(word: torch.Tensor, c: int, like: torch.Tensor) -> torch.Tensor:
    """±1 per channel (N x C x 1 x 1) from the low ``c`` bits of one word per sample."""
    shifts = torch.arange(c, device=word.device)
    return (((word.view(-1, 1) >> shifts) & 1) * 2 - 1).view(-1, c, 1, 1).to(like)


def place(patch: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Write per-sample patches (N x C x s x s) into zero images (N x C x H x W) at (top, left)."""
    n, c, s, _ = patch.shape
    rows = (torch.arange(h, device=patch.device).view(1, h, 1) - top.view(-1, 1, 1))
    cols = (torch.arange(w, device=patch.device).view(1, 1, w) - left.view(-1, 1, 1))
    inside = (rows >= 0) & (rows < s) & (cols >= 0) & (cols < s)
    idx = (rows.clamp(0, s - 1) * s + cols.clamp(0, s - 1)).view(n, 1, h * w).expand(n, c, h * w)
    out = patch.reshape(n, c, s * s).gather(2, idx).view(n, c, h, w)
    return out * inside.unsqueeze(1)


def centre_weights(rows: int, cols: int, norm: str = "l2") -> torch.Tensor:
    """Nested rectangles weighted 1/(k+1)² around the centre, unit l2 norm (the L2 "pseudo-Gaussian"
    building block of Section 3.2); for l1, weighted 1/(k+1)⁴ and unit l1 norm, as the reference
    code's l1 Square (Croce & Hein, ICML 2021) builds it."""
    delta = torch.zeros(rows, cols)
    r0, c0 = rows // 2, cols // 2
    power = 4 if norm == "l1" else 2
    for k in range(max(r0, c0) + 1):
        delta[max(r0 - k, 0):min(r0 + k + 1, rows), max(c0 - k, 0):min(c0 + k + 1, cols)] += 1.0 / (k + 1) ** power
    return delta / (delta.abs().sum() if norm == "l1" else delta.norm())


def pattern(s: int, norm: str = "l2") -> torch.Tensor:
    """Two pseudo-Gaussian halves of opposite sign in an s x s square, unit norm (Section 3.2);
    ``norm = "l1"``: the l1 variant, unit l1 norm."""
    top = centre_weights(s // 2, s, norm) if s // 2 > 0 else torch.zeros(0, s)
    both = torch.cat([top, -centre_weights(s - s // 2, s, norm)], 0)
    return both / (both.abs().sum() if norm == "l1" else both.norm())


@attrs.frozen
class Square(AttackBase):
    """Square Attack — Andriushchenko et al., ECCV 2020 (https://arxiv.org/abs/1912.00049).
    Distance: linf, l2 or l1. Score-based and gradient-free: only forward passes.

    Random search on the margin loss z_y − max_{k≠y} z_k (targeted: max_{k≠t} z_k − z_t). linf
    (Algorithm 2): start from vertical stripes of ±eps; each iteration sets one random square
    per sample to ±eps per channel around the original (projected onto the ball and the box)
    and keeps it if the margin fell. l2 (Algorithm 3): start from a grid of pseudo-Gaussian
    squares scaled to norm eps; each iteration moves the perturbation mass of a second random
    square into a new pseudo-Gaussian pattern on the first, keeping the norm at eps. The
    square's side follows the fraction schedule from ``p_init`` (0.8, AutoAttack's value).
    l1 (the version in Croce & Hein's AutoAttack code, used by its l1 ensemble, ICML 2021): as l2
    with sharper patterns (weights 1/(k+1)⁴, unit l1 norm); the moved mass is measured in l1 and
    every point is projected onto the l1 ball ∩ the pixel box (``ops.project_l1``).
    Each iteration is one batched forward of the samples still robust; a sample stops at its
    first success. Arguments: eps (8/255), norm ('linf'|'l2'|'l1'), queries (5000 iterations; at most
    queries + 2 forwards per sample, counting the clean check and the start), p_init (0.8).
    The windows, signs and patterns come from ``generator``, so a seeded call is reproducible.
    """

    name: ClassVar[str] = "square"
    per_sample_streams: ClassVar[bool] = True
    gradient_free: ClassVar[bool] = True
    eps: float = attrs.field(default=8 / 255, validator=attrs.validators.ge(0))
    norm: Literal["linf", "l2", "l1"] = attrs.field(default="linf",
                                                    validator=attrs.validators.in_(["linf", "l2", "l1"]))
    queries: int = attrs.field(default=5000, validator=attrs.validators.ge(1))
    p_init: float = attrs.field(default=0.8, validator=attrs.validators.and_(attrs.validators.gt(0),
                                                                              attrs.validators.le(1)))

    def signs(self, shape, generator, like):
        if len(shape) == 4 and shape[1] <= 62 and shape[2:] == (1, 1):  # one word per sample
            return bit_signs(streams.words(generator, shape[0], 1, like.device)[:, 0], shape[1], like)
        return (streams.integers(generator, 0, 2, shape) * 2 - 1).to(like)

    def init_linf(self, x, eps, generator):
        n, c, _, w = x.shape
        return (x + eps * self.signs((n, c, 1, w), generator, x)).clamp(*self.bounds)

    def init_lp(self, x, eps, generator):
        """A grid of patterns with a random sign per square and channel, scaled to norm eps (l2) or
        projected onto the l1 ball ∩ box (l1)."""
        n, c, h, w = x.shape
        s = max(h // 5, 1)
        delta = torch.zeros_like(x)
        unit = pattern(s, self.norm).to(x) if s > 1 else torch.ones(1, 1).to(x)
        offset = (h - 5 * s) // 2
        for i in range(offset, h - s + 1, s):
            for j in range(offset, w - s + 1, s):
                delta[:, :, i:i + s, j:j + s] += unit * self.signs((n, c, 1, 1), generator, x)
        if self.norm == "l1":
            return x + project_l1(x, delta, eps * (1 - 1e-6), self.bounds)
        delta = delta / flat_norm(delta, "l2").clamp(min=1e-12) * eps
        return (x + delta).clamp(*self.bounds)

    def propose_linf(self, x, x_best, eps, s, generator, lo, hi):
        """Set one random window per sample to ±eps per channel around ``x``; ``lo``/``hi`` are the
        ball ∩ box bounds. One draw of three words per sample gives the window and the signs."""
        n, c, h, w = x.shape
        drawn = streams.words(generator, n, 3, x.device)
        mask, _, _ = window_masks(drawn[:, :2], h, w, s)
        step = (2 * eps) * bit_signs(drawn[:, 2], c, x)
        return torch.where(mask, x_best + step, x_best).clamp(lo, hi)

    def propose_lp(self, x, x_best, eps, s, generator, lo, hi):
        """l2 (Algorithm 3) and l1 (the reference code's version): move the perturbation mass of a
        second random window into a new pattern on the first. Per channel, the new window carries
        its old content plus a pattern (random orientation, random sign), rescaled to the channel's
        old mass in both windows plus a share of the unused budget (l1: times the channel count, as
        the reference computes it, exact for one channel). l2 then rescales the point to norm eps;
        l1 projects it onto the l1 ball ∩ box."""
        n, c, h, w = x.shape
        l1 = self.norm == "l1"

        def mass(t):  # per sample and channel: N x C x 1 x 1
            return t.abs().sum((2, 3), keepdim=True) if l1 else t.pow(2).sum((2, 3), keepdim=True).sqrt()

        delta = x_best - x
        drawn = streams.words(generator, n, 5, x.device)  # two windows, then orientation and signs
        m1, top, left = window_masks(drawn[:, :2], h, w, s)
        m2, _, _ = window_masks(drawn[:, 2:4], h, w, s)
        total = flat_norm(delta, self.norm)                                   # N x 1 x 1 x 1
        in_windows = mass(delta * (m1 | m2))
        old = delta * m1
        base = pattern(s, self.norm).to(x)
        flip = (drawn[:, 4] >> 61) & 1 == 1
        pat = torch.where(flip.view(n, 1, 1), base.T.expand(n, s, s), base.expand(n, s, s))
        new = place(pat.unsqueeze(1) * bit_signs(drawn[:, 4], c, x), top, left, h, w) + old / mass(old).clamp(min=1e-12)
        if l1:
            budget = ((eps - total).clamp(min=0) / c + in_windows) * c
        else:
            budget = ((eps ** 2 - total ** 2).clamp(min=0) / c + in_windows ** 2).sqrt()
        new = new / mass(new).clamp(min=1e-12) * budget
        delta = torch.where(m2, torch.zeros_like(delta), delta)
        delta = torch.where(m1, new, delta)
        if l1:
            return x + project_l1(x, delta, eps * (1 - 1e-6), self.bounds)
        delta = delta / flat_norm(delta, "l2").clamp(min=1e-12) * eps
        return (x + delta).clamp(*self.bounds)

    @staticmethod
    def compact(idx, x, lo, hi, eps, y, target, x_best, best, generator):
        """The search state restricted to rows ``idx``."""
        return (x[idx], lo[idx], hi[idx], eps[idx], y[idx], None if target is None else target[idx],
                x_best[idx], best[idx], streams.subset(generator, idx))

    def perturb(self, model, x, y, *, target, generator, eps):
        if x.ndim != 4:
            raise ValueError(f"square needs image batches N x C x H x W, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        with torch.no_grad():
            clean = margin(model(x), y, target)
            start = (self.init_linf if self.norm == "linf" else self.init_lp)(x, eps, generator)
            best = margin(model(start), y, target)
            already = clean <= 0  # misclassified without any perturbation: nothing to search
            x_best = torch.where(already.view(-1, 1, 1, 1), x, start)
            best = torch.where(already, clean, best)
            propose = self.propose_linf if self.norm == "linf" else self.propose_lp
            # the search runs on the samples still robust, kept compact; rows leave it (and their
            # best point is written back) only when some sample succeeds, so an iteration without
            # a success indexes nothing
            lo, hi = (x - eps).clamp(*self.bounds), (x + eps).clamp(*self.bounds)
            rows = (best > 0).nonzero().flatten()
            state = self.compact(rows, x, lo, hi, eps, y, target, x_best, best, generator)
            with sample_rows(rows) as frame:
                for i in range(self.queries):
                    report_progress(i, self.queries)
                    if len(rows) == 0:
                        break
                    xs, los, his, es, ys, ts, xb, mb, gen = state
                    p = fraction_schedule(self.p_init, i, self.queries)
                    s = max(int(round(math.sqrt(p * h * w))), 1)
                    if self.norm != "linf":
                        s = max(s, 3) + (1 - max(s, 3) % 2)  # odd and at least 3, as the paper's patterns
                    s = min(s, h, w)
                    cand = propose(xs, xb, es, s, gen, los, his)
                    m = margin(model(cand), ys, ts)
                    better = m < mb
                    xb = torch.where(better.view(-1, 1, 1, 1), cand, xb)
                    mb = torch.where(better, m, mb)
                    state = state[:6] + (xb, mb, gen)
                    done = mb <= 0
                    if bool(done.any()):
                        x_best[rows], best[rows] = xb, mb
                        keep = (~done).nonzero().flatten()
                        rows = rows[keep]
                        state = self.compact(keep, *state[:6], xb, mb, gen)
                        frame.set(rows)  # the ledger: the batch now carries the samples still searched
            if len(rows):
                x_best[rows], best[rows] = state[6], state[7]
        # samples never fooled keep their best point (inside the budget): harmless, and the
        # margin it reached is the attack's honest output
        return x_best
