"""The experiment's settings: what a TOML file says, as frozen attrs classes.

``advx.config`` parses a file into these (and re-exports them); everything else reads them. Each
field's annotation is what the file may give (numbers such as ``"8/255"`` wherever a float is).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import attrs

from .errors import ConfigError


@attrs.frozen
class ComponentSpec:
    """A component named in the config: its registry name, parameters and TOML path."""

    name: str
    params: dict[str, Any] = attrs.field(factory=dict)
    where: str = ""

    def key(self) -> str:
        return json.dumps({"name": self.name, "params": self.params}, sort_keys=True, default=str)

    def short(self) -> str:
        if not self.params:
            return self.name
        return self.name + "(" + ",".join(f"{k}={v}" for k, v in sorted(self.params.items())) + ")"


@attrs.frozen
class ExperimentSettings:
    name: str = "experiment"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    output: str = "runs/experiment.h5"
    cache_dir: str = ""
    channels_last: bool = False
    compile: bool = False  # torch.compile the trained models for evaluation (worth it on CUDA)
    #: torch.compile's backend: "inductor" (generated kernels, torch's default), "aot_eager" (the
    #: same graph capture without code generation: seconds instead of minutes to start on a CPU),
    #: "cudagraphs"
    compile_backend: Literal["inductor", "aot_eager", "cudagraphs"] = "inductor"


@attrs.frozen
class DataSettings:
    dataset: ComponentSpec
    train_fraction: float = 1.0
    val_fraction: float = 0.0
    test_limit: int | None = None
    splits: int = 1
    #: draws the test subset (test_limit) and its folds (splits), apart from experiment.seed: every
    #: training seed is judged on the same images (paper claims pool seeds over one fixed subset)
    subset_seed: int = 0
    #: "none" or a registered image augmentation run on every training batch ("crop-flip";
    #: plugins add their own, e.g. advx-fixer's "paper003")
    augment: str = "none"


@attrs.frozen
class TrainSettings:
    epochs: int = 10
    batch_size: int = 128
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: Literal["none", "step", "multistep", "onecycle", "cosine"] = "none"
    step_size: int = 30
    #: "multistep": lr × gamma at each of these epochs (paper 001: 300, 400 of 500; paper 004: 100, 150)
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    loss: Literal["ce", "focal"] = "ce"
    focal_gamma: float = 2.0
    augment: tuple[ComponentSpec, ...] = ()
    checkpoint: str | None = None
    #: "scratch", "base" or the label of an earlier [[train]] variant: start from that trained
    #: model (paper 001 Table 5 adversarially trains each pretrained model: init = "mixup").
    init: str = "scratch"
    train_fraction: float | None = None  # this variant only: stratified subset of the training split
    data_augment: str | None = None  # this variant's image augmentation; None: data.augment


@attrs.frozen
class TrainVariant:
    label: str
    settings: TrainSettings

    def data_augment(self, data: DataSettings) -> str:
        """The image augmentation this variant's batches get: its own, else the data's."""
        return self.settings.data_augment if self.settings.data_augment is not None else data.augment


@attrs.frozen
class DefenseVariant:
    label: str
    chain: tuple[ComponentSpec, ...] = ()
    repeats: int = 1
    eot: int | None = None
    #: only these trained models get this pipeline (paper 004 tunes MI-OL's λ and the crop sizes
    #: per model); None: every trained model
    trains: tuple[str, ...] | None = None


@attrs.frozen
class AttackSpec:
    label: str
    component: ComponentSpec
    target: Literal["none", "random", "least-likely"] = "none"
    sweep_param: str | None = None
    sweep_value: Any = None
    defenses: tuple[str, ...] | None = None  # only these pipelines (defence labels, "none"); None: all
    modes: tuple[str, ...] | None = None  # only these threat models; None: every mode of the run
    #: a minimal-norm attack's budget in its own norm (``budget = "8/255"``): its success counts only
    #: where the point it found fits; None: unbounded (an attack with an eps of its own uses that)
    budget: float | None = None


def _batch_size(_: Any, attribute: Any, value: Any) -> None:
    if value != "auto" and (not isinstance(value, int) or value < 1):
        raise ConfigError(f"evaluate.{attribute.name}: expected a positive integer or \"auto\", got {value!r}")


#: The threat models advx itself registers (advx.evaluation.threat_models; plugins may add more).
MODES = ("oblivious", "adaptive", "transfer", "black-box")


@attrs.frozen
class EvaluateSettings:
    #: threat models by registered name (``advx list threat-model``): oblivious, adaptive,
    #: transfer, black-box, or a plugin's own
    modes: tuple[str, ...] = ("oblivious",)
    transfer_from: str | None = None
    batch_size: int | Literal["auto"] = attrs.field(default="auto", validator=_batch_size)
    chunk_size: int = 1024
    eot: int = 1
    #: the adaptive attack every randomized pipeline gets besides the configured ones: AutoAttack's
    #: "rand" version (APGD-CE and APGD-DLR, gradients averaged over ``randomized_eot`` draws) at
    #: each budget of the run; "none" to leave it out (say why in the config: it costs steps x eot)
    randomized_attack: Literal["autoattack-rand", "none"] = "autoattack-rand"
    randomized_eot: int = 20
    randomized_steps: int = 100  # AutoAttack's; fewer is no longer its standard: say so beside it
    save_adversarials: bool = False
    include_undefended: bool = True
    metrics: tuple[ComponentSpec, ...] = ()


@attrs.frozen
class ModelFiles:
    """The base network's own trained weights and input scaling (``[model]`` keys beside
    ``name``): ``checkpoint`` (state dict .pt, .safetensors or TorchScript; without ``name`` a
    TorchScript archive is the network itself), ``strip_prefix`` (e.g. ``"module."``) and
    ``normalize`` (a preset or ``{mean, std}``, applied inside the model so eps stays in pixels)."""

    checkpoint: str | None = None
    strip_prefix: str = ""
    normalize: str | dict[str, Any] | None = None


MODEL_FILE_KEYS = frozenset({"checkpoint", "strip_prefix", "normalize"})


@attrs.frozen
class ExperimentConfig:
    experiment: ExperimentSettings
    data: DataSettings
    model: ComponentSpec
    base_train: TrainSettings
    trains: tuple[TrainVariant, ...]
    defenses: tuple[DefenseVariant, ...]
    attacks: tuple[AttackSpec, ...]
    evaluate: EvaluateSettings
    raw: dict[str, Any] = attrs.field(eq=False, repr=False)
    model_files: ModelFiles = ModelFiles()

    @property
    def pretrained(self) -> bool:
        """The base network arrives trained (a checkpoint, a source's weights): evaluated as loaded."""
        from advx.model_sources import arrives_trained

        return self.model_files.checkpoint is not None or arrives_trained(self.model.name, self.model.params)

    def text(self) -> str:
        """Canonical JSON of the raw config (what the store keeps and compares)."""
        return json.dumps(self.raw, sort_keys=True, default=str)
