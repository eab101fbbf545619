"""What the core calls and reads on each kind of component (the protocols are in
:mod:`advx.protocols`). Kept free of torch: the registry's checks and the catalog read it
without importing torch."""

from __future__ import annotations

import re

#: The plugin API's version: MAJOR changes when a plugin written for the last one may break
#: (a method the core calls, an argument it passes, a name ``advx.api`` exports), MINOR when
#: something is added. A plugin states the range it supports as ``ADVX_API = ">=1.0,<2"`` in
#: its entry-point module; the registry refuses, in one line, a plugin whose range excludes this.
API_VERSION = "1.0"

_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)\s*$")


def api_supported(spec: str, version: str = API_VERSION) -> bool:
    """Whether ``version`` lies in ``spec`` (comma-separated clauses such as ">=1.0,<2").
    Raises ValueError for a malformed range."""
    def key(v: str) -> tuple[int, ...]:
        parts = [int(p) for p in v.split(".")]
        return tuple(parts + [0] * (3 - len(parts)))

    have = key(version)
    ok = True
    for clause in str(spec).split(","):
        m = _CLAUSE.match(clause)
        if m is None:
            raise ValueError(f"{spec!r} is not a version range (e.g. \">=1.0,<2\")")
        op, want = m.group(1), key(m.group(2))
        ok &= {">=": have >= want, "<=": have <= want, "==": have == want, "!=": have != want,
               ">": have > want, "<": have < want}[op]
    return ok

#: The contract in one place, per kind: the methods a component must define ("required": each
#: group needs one of its names) and every other attribute or method the core reads or calls
#: ("optional": read with a default when absent). The registry's checks derive from it, and
#: tests/test_declared_contract.py fails when the core reads a name this table does not list.
CONTRACT: dict[str, dict[str, tuple]] = {
    "model": {"required": (("build",),), "optional": ("name",)},
    "dataset": {"required": (("load",),), "optional": ("name",)},
    "attack": {"required": (("__call__",),), "optional": (
        "name", "attack_with_log", "perturb", "perturb_logged", "eps", "norm", "bounds", "supports_target",
        "gradient_free", "minimal", "per_sample_streams", "skipped_log", "members", "eot")},
    "training_augmentation": {"required": (("setup", "augment", "loss", "teardown", "adapt_model",
                                            "augment_images"),), "optional": ("name", "attack", "params")},
    "inference_defense": {"required": (("wrap", "transform"),), "optional": (
        "name", "randomized", "differentiable", "optimizes_input", "per_sample_streams", "averages_draws")},
    "evaluator": {"required": (("evaluate",),), "optional": ("name",)},
    "threat_model": {"required": (("adversarials",),), "optional": (
        "name", "crafts_on", "scored_on", "stronger_than", "differentiates_pipeline", "cell_mode", "check_config",
        "prepare")},
}
#: every name the core may touch on a component of each kind
DECLARED: dict[str, tuple[str, ...]] = {
    kind: tuple(n for group in c["required"] for n in group) + c["optional"] for kind, c in CONTRACT.items()}
