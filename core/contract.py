"""The plugin contract, in one place: what the core calls and reads on each kind of component
(``SIGNATURES``, ``ATTRIBUTES``, ``REQUIRED``), and the plugin API's version. Every other text
that states it — the protocols' docstring, the base classes, the registry's tutorial, the hook
specifications, the README, ``advx describe`` — is tested against these tables. Kept free of
torch: the registry's checks and the catalog read it without importing torch."""

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

#: The signature of every method the core calls, per kind (parameter names in order; ``*``
#: starts the keyword-only ones). The base classes' real signatures, the protocols' docstring,
#: the registry's tutorial, the hook specifications and the README's plugin section are tested
#: against this table (tests/test_contract_source.py): a text that disagrees fails.
SIGNATURES: dict[str, dict[str, str]] = {
    "model": {"build": "num_classes, in_channels"},
    "dataset": {"load": ""},
    "attack": {"__call__": "model, x, y, *, target=None, generator=None, eps=None",
               "attack_with_log": "model, x, y, *, target=None, generator=None, eps=None",
               "perturb": "model, x, y, *, target, generator, eps",
               "perturb_logged": "model, x, y, *, target, generator, eps"},
    "training_augmentation": {"adapt_model": "model, info", "setup": "ctx", "augment": "batch, ctx",
                              "loss": "model, batch, ctx", "teardown": "ctx", "augment_images": "x, generator"},
    "inference_defense": {"wrap": "model, context=None", "transform": "x, model, generator, context"},
    "evaluator": {"evaluate": "results"},
    "threat_model": {"adversarials": "runner, cell, s, e, clean_ok", "prepare": "runner, cell",
                     "check_config": "cfg, attacks", "cell_mode": "*, gradient_free, defended, modes"},
}
#: What the core reads besides methods, per kind, and what each attribute means.
ATTRIBUTES: dict[str, dict[str, str]] = {
    "attack": {
        "name": "the registry name (ClassVar)",
        "eps": "the budget (float) the evaluator checks every output against",
        "norm": "'linf', 'l2' or 'l1': the ball every output is checked in",
        "bounds": "the pixel range (default (0, 1)) outputs are clamped to",
        "supports_target": "whether target= is accepted",
        "gradient_free": "queries outputs only: the black-box threat model runs it on the whole pipeline",
        "minimal": "a minimal-norm attack (CW, DeepFool): no ball, its own worst-case group",
        "per_sample_streams": "draws through advx.streams: the evaluator passes per-sample streams",
        "skipped_log": "per-sample record values for samples the evaluator does not attack (dict)",
        "members": "an ensemble's member names in order (AutoAttack), read beside broken_by",
        "eot": "gradient averaged over this many queries of a randomized pipeline",
    },
    "inference_defense": {
        "name": "the registry name (ClassVar)",
        "randomized": "fresh draws per call: evaluated over repeats draws and attacked with EOT",
        "differentiable": "False: adaptive attacks pass the gradient straight through (BPDA)",
        "optimizes_input": "optimises the input at inference (counteract): adaptive and gradient-free checks",
        "per_sample_streams": "draws through advx.streams, keyed per image",
        "averages_draws": "every call already averages this many draws (EOT built in)",
    },
    "training_augmentation": {"name": "the registry name (ClassVar)",
                              "attack": "the attack a recipe crafts with (name)", "params": "its parameters"},
    "model": {"name": "the registry name (ClassVar)"},
    "dataset": {"name": "the registry name (ClassVar)"},
    "evaluator": {"name": "the registry name (ClassVar)"},
    "threat_model": {"name": "the registry name (ClassVar)", "crafts_on": "the model the points are crafted on",
                     "scored_on": "the pipeline they are scored on", "stronger_than": "modes it must not be weaker than",
                     "differentiates_pipeline": "attacks differentiate through the defence"},
}

#: The methods a component must define, per kind: each group needs one of its names (an
#: augmentation may write any of its hooks; a defence ``wrap`` or ``transform``).
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "model": (("build",),), "dataset": (("load",),), "attack": (("__call__",),),
    "training_augmentation": (tuple(SIGNATURES["training_augmentation"]),),
    "inference_defense": (("wrap", "transform"),), "evaluator": (("evaluate",),),
    "threat_model": (("adversarials",),),
}
#: The contract derived from the tables above: "required" (REQUIRED) and "optional" (every
#: other method and attribute the core reads, with a default when absent). The registry's
#: checks use it, and tests/test_declared_contract.py fails when the core reads a name it lacks.
CONTRACT: dict[str, dict[str, tuple]] = {
    kind: {"required": REQUIRED[kind],
           "optional": tuple(n for n in (*SIGNATURES[kind], *ATTRIBUTES[kind])
                             if not any(n in group for group in REQUIRED[kind]))}
    for kind in SIGNATURES}
#: every name the core may touch on a component of each kind
DECLARED: dict[str, tuple[str, ...]] = {
    kind: tuple(n for group in c["required"] for n in group) + c["optional"] for kind, c in CONTRACT.items()}


def markdown_table() -> str:
    """The contract as the README's plugin section prints it (a test keeps the two equal)."""
    rows = ["| kind | the core calls | it reads (optional) |", "| --- | --- | --- |"]
    for kind, methods in SIGNATURES.items():
        required = {n for group in REQUIRED[kind] for n in group}
        calls = "<br>".join(f"`{m}({sig})`" + ("" if m in required and len(REQUIRED[kind][0]) == 1 else
                                                " (optional)" if m not in required else "")
                            for m, sig in methods.items())
        rows.append(f"| {kind} | {calls} | {', '.join(f'`{a}`' for a in ATTRIBUTES[kind] if a != 'name')} |")
    note = ("Each component is an attrs class with `name: ClassVar[str]`. An augmentation writes any of its "
            "hooks; a defence `wrap` or `transform`; an attack `__call__` (subclass `AttackBase` and write "
            "`perturb`). Plugin API " + API_VERSION + ".")
    return "\n".join(rows) + "\n\n" + note
