"""What the core calls and reads on each kind of component (the protocols are in
:mod:`advx.protocols`). Kept free of torch: the registry's checks and the catalog read it
without importing torch."""

from __future__ import annotations

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
