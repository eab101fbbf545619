"""Experiment configuration: a TOML table parsed into the attrs classes of :mod:`advx.settings`
(re-exported here, the names the rest of advx imports).

Every error names the TOML path, the bad value and what would be valid. Numbers such as
``"8/255"`` are accepted wherever a float is (:mod:`advx.values`); ``--set`` overrides are
:mod:`advx.overrides`. Component parameters (everything in a component table except the reserved
keys) are validated against the component's attrs fields by the registry when the experiment is
resolved.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

import attrs

from .errors import ComponentParameterError, ConfigError
from .overrides import apply_overrides, read_toml
from .settings import (MODEL_FILE_KEYS, MODES, AttackSpec, ComponentSpec, DataSettings, DefenseVariant,
                       EvaluateSettings, ExperimentConfig, ExperimentSettings, ModelFiles, TrainSettings, TrainVariant)
from .values import coerce, field_table

__all__ = [
    "MODEL_FILE_KEYS", "MODES", "AttackSpec", "ComponentSpec", "DataSettings", "DefenseVariant", "EvaluateSettings",
    "ExperimentConfig", "ExperimentSettings", "ModelFiles", "TrainSettings", "TrainVariant", "apply_overrides",
    "load_config", "parse_config", "read_toml",
]


TOP_KEYS = {"experiment", "data", "model", "train", "defense", "attack", "evaluate"}


def _settings(cls: type, table: Any, path: str, skip: set[str] = frozenset()) -> dict[str, Any]:
    """Coerce ``table`` to keyword arguments of attrs class ``cls``, naming ``path`` on error."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: expected a table, got {table!r}")
    attrs.resolve_types(cls)
    fields = {f.name: f for f in attrs.fields(cls)}
    out = {}
    for key, value in table.items():
        if key in skip:
            continue
        if key not in fields:
            hint = difflib.get_close_matches(key, list(fields), n=1)
            did = f" did you mean {hint[0]!r}?" if hint else ""
            valid = ", ".join(f"{n}: {t} = {d!r}" for n, t, d in field_table(cls) if n not in skip)
            raise ConfigError(f"{path}.{key}: unknown key;{did} valid keys: {valid}")
        try:
            out[key] = coerce(value, fields[key].type, f"{path}.{key}")
        except ComponentParameterError as exc:
            raise ConfigError(str(exc)) from None
    return out


def _component(table: Any, path: str, reserved: set[str] = frozenset()) -> ComponentSpec:
    if isinstance(table, str):
        return ComponentSpec(table, {}, path)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: expected a table with a 'name' key, got {table!r}")
    if "name" not in table or not isinstance(table["name"], str):
        raise ConfigError(f"{path}.name: missing or not a string (got {table.get('name')!r})")
    params = {k: v for k, v in table.items() if k != "name" and k not in reserved}
    return ComponentSpec(table["name"], params, path)


def _components(value: Any, path: str) -> tuple[ComponentSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{path}: expected an array of component tables, got {value!r}")
    return tuple(_component(v, f"{path}[{i}]") for i, v in enumerate(value))


def _train_settings(table: dict[str, Any], path: str, base: TrainSettings | None = None) -> TrainSettings:
    kw = _settings(TrainSettings, table, path, skip={"augment", "label"})
    if "augment" in table:
        kw["augment"] = _components(table["augment"], f"{path}.augment")
    return attrs.evolve(base, **kw) if base is not None else TrainSettings(**kw)


def _budget(value: Any, path: str) -> float | None:
    """``budget = "8/255"`` (or 0.03): a positive number, or absent."""
    if value is None:
        return None
    from advx.values import parse_number

    try:
        eps = parse_number(value, path)
    except Exception as exc:  # noqa: BLE001 - one message for any unreadable value
        raise ConfigError(f"{path}: expected a positive number such as 0.03 or \"8/255\", got {value!r}") from exc
    if not eps > 0:
        raise ConfigError(f"{path}: expected a positive number such as 0.03 or \"8/255\", got {value!r}")
    return float(eps)


def _attacks(items: Any) -> tuple[AttackSpec, ...]:
    if not isinstance(items, list):
        raise ConfigError(f"attack: expected an array of tables ([[attack]]), got {items!r}")
    out: list[AttackSpec] = []
    for i, table in enumerate(items):
        path = f"attack[{i}]"
        comp = _component(table, path, reserved={"label", "target", "sweep", "defenses", "budget"})
        label = table.get("label", comp.short()) if isinstance(table, dict) else comp.name
        target = table.get("target", "none") if isinstance(table, dict) else "none"
        if target not in ("none", "random", "least-likely"):
            raise ConfigError(f"{path}.target: expected 'none', 'random' or 'least-likely', got {target!r}")
        only = table.get("defenses") if isinstance(table, dict) else None
        if only is not None and not (isinstance(only, list) and only and all(isinstance(d, str) for d in only)):
            raise ConfigError(f"{path}.defenses: expected a non-empty list of defence labels, got {only!r}")
        only = None if only is None else tuple(only)
        budget = _budget(table.get("budget") if isinstance(table, dict) else None, f"{path}.budget")
        sweep = table.get("sweep") if isinstance(table, dict) else None
        if sweep is None:
            out.append(AttackSpec(str(label), comp, target, defenses=only, budget=budget))
            continue
        if not (isinstance(sweep, dict) and len(sweep) == 1 and isinstance(next(iter(sweep.values())), list)):
            raise ConfigError(f"{path}.sweep: expected one parameter and a list, e.g. sweep = {{eps = [0.1, 0.2]}}, got {sweep!r}")
        (param, values), = sweep.items()
        if not values:
            raise ConfigError(f"{path}.sweep: the list of {param} values is empty")
        for v in values:
            params = {**comp.params, param: v}
            out.append(AttackSpec(f"{label}[{param}={v}]", ComponentSpec(comp.name, params, path), target, param, v,
                                  only, budget=budget))
    labels = [a.label for a in out]
    dup = {x for x in labels if labels.count(x) > 1}
    if dup:
        raise ConfigError(f"attack: labels must be unique, repeated: {sorted(dup)}; set label = \"...\"")
    if RESERVED_LABELS & set(labels):
        raise ConfigError(f"attack: {sorted(RESERVED_LABELS & set(labels))[0]!r} names the unattacked cells; "
                          f"choose another label")
    return tuple(out)


def _defenses(items: Any) -> tuple[DefenseVariant, ...]:
    if not isinstance(items, list):
        raise ConfigError(f"defense: expected an array of tables ([[defense]]), got {items!r}")
    out = []
    for i, table in enumerate(items):
        path = f"defense[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: expected a table, got {table!r}")
        if "chain" in table:
            extra = set(table) - {"label", "chain", "repeats", "eot", "trains"}
            if extra:
                raise ConfigError(f"{path}.{sorted(extra)[0]}: unknown key beside chain (valid: label, chain, repeats, "
                                  "eot, trains; a defence's own parameters go inside its chain entry)")
            chain = _components(table["chain"], f"{path}.chain")
            if not chain:
                raise ConfigError(f"{path}.chain: empty; list at least one defence, e.g. chain = [{{name = \"crop-rescale\"}}]")
        elif "name" in table:
            chain = (_component(table, path, reserved={"label", "repeats", "eot", "trains"}),)
        else:
            raise ConfigError(f"{path}: give either name = \"...\" (one defence) or chain = [{{name = ...}}, ...]")
        label = table.get("label") or "+".join(c.name for c in chain)
        if str(label) == "none":
            raise ConfigError(f"{path}.label: 'none' is the undefended baseline, always evaluated; choose another label")
        if str(label) in RESERVED_LABELS:
            raise ConfigError(f"{path}.label: {label!r} is reserved (it names the unattacked cells); choose another label")
        kw_trains = table.get("trains")
        for d in out:  # one label may name per-model variants, on disjoint trained models only
            if d.label == str(label) and (d.trains is None or not isinstance(kw_trains, list)
                                          or set(d.trains) & set(kw_trains)):
                raise ConfigError(f"{path}.label: {label!r} is used by another defence; labels must be unique "
                                  f"(or give each variant disjoint trains = [...])")
        kw = _settings(DefenseVariant, {k: table[k] for k in ("repeats", "eot") if k in table}, path)
        if "trains" in table:
            only = table["trains"]
            if not (isinstance(only, list) and only and all(isinstance(t, str) for t in only)):
                raise ConfigError(f"{path}.trains: expected a non-empty list of trained-model labels, got {only!r}")
            kw["trains"] = tuple(only)
        out.append(DefenseVariant(str(label), chain, **kw))
    return tuple(out)


#: Labels the evaluator uses itself: the clean cells and the undefended pipeline.
RESERVED_LABELS = frozenset({"clean", "none"})


def parse_config(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate the structure of a config dict (component names are checked on resolve)."""
    unknown = set(raw) - TOP_KEYS
    if unknown:
        k = sorted(unknown)[0]
        hint = difflib.get_close_matches(k, TOP_KEYS, n=1)
        raise ConfigError(f"{k}: unknown section{'; did you mean ' + repr(hint[0]) + '?' if hint else ''} "
                          f"valid sections: {', '.join(sorted(TOP_KEYS))}")
    exp = ExperimentSettings(**_settings(ExperimentSettings, raw.get("experiment", {}), "experiment"))
    data_t = raw.get("data", {"name": "digits"})
    if not isinstance(data_t, dict):
        raise ConfigError(f"data: expected a table, e.g. [data] name = \"digits\", got {data_t!r}")
    settable = {f.name for f in attrs.fields(DataSettings)} - {"dataset"}  # the dataset is the table itself
    data = DataSettings(_component(data_t, "data", reserved=settable),
                        **_settings(DataSettings, {k: v for k, v in data_t.items() if k in settable}, "data"))
    if "model" not in raw:
        raise ConfigError("model: missing section; e.g. [model] name = \"digits-cnn\"")
    model_t = raw["model"]
    model, files = _model(model_t)
    base = _train_settings(model_t.get("train", {}) if isinstance(model_t, dict) else {}, "model.train")
    trains = [TrainVariant("base", base)]
    for i, t in enumerate(raw.get("train", [])):
        if not isinstance(t, dict) or "label" not in t:
            raise ConfigError(f"train[{i}]: expected a table with a label, e.g. [[train]] label = \"mixup\"")
        settings = _train_settings(t, f"train[{i}]", base=attrs.evolve(base, augment=(), checkpoint=None))
        trains.append(TrainVariant(str(t["label"]), settings))
    labels = [t.label for t in trains]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"train: labels must be unique (and not 'base'), got {labels}")
    eval_t = raw.get("evaluate", {})
    if isinstance(eval_t, dict) and isinstance(eval_t.get("modes"), str):
        raise ConfigError(f"evaluate.modes: expected a list, e.g. modes = [{eval_t['modes']!r}], got the string "
                          f"{eval_t['modes']!r}")
    ekw = _settings(EvaluateSettings, eval_t, "evaluate", skip={"metrics"})
    if "metrics" in eval_t:
        ekw["metrics"] = _components(eval_t["metrics"], "evaluate.metrics")
    evaluate = EvaluateSettings(**ekw)
    _check_modes(evaluate, labels)
    defenses, attacks = _defenses(raw.get("defense", [])), _attacks(raw.get("attack", []))
    for i, dv in enumerate(defenses):
        unknown = [t for t in dv.trains or () if t not in labels]
        if unknown:
            raise ConfigError(f"defense[{i}].trains: {unknown[0]!r} names no trained model; trained models: "
                              f"{', '.join(labels)}")
    known = ["none", *(d.label for d in defenses)]
    for a in attacks:
        bad = [d for d in a.defenses or () if d not in known]
        if bad:
            raise ConfigError(f"{a.component.where}.defenses: {bad[0]!r} is no defence label; labels: {', '.join(known)}")
    cfg = ExperimentConfig(exp, data, model, base, tuple(trains), defenses, attacks, evaluate, raw, files)
    if cfg.pretrained and isinstance(model_t, dict) and "train" in model_t:
        raise ConfigError("model.train: the base network arrives trained (checkpoint or pretrained weights) and is "
                          "evaluated as loaded; to fine-tune it, add a [[train]] variant with init = \"base\"")
    _check_ranges(cfg)
    return cfg


def _model(table: Any) -> tuple[ComponentSpec, ModelFiles]:
    """``[model]``: the network's name and parameters, and its weights file and input scaling."""
    if isinstance(table, dict) and "name" not in table and isinstance(table.get("checkpoint"), str):
        extra = set(table) - {"checkpoint", "normalize", "train"}
        if extra:
            raise ConfigError(f"model.{sorted(extra)[0]}: a model without a name is a TorchScript archive "
                              f"(model.checkpoint), which takes no parameters")
        path = Path(table["checkpoint"]).expanduser()
        from advx.checkpoints import is_torchscript

        if path.is_file() and not is_torchscript(path):
            raise ConfigError(f"model.name: missing; {path} is a state dict, so name the network it belongs to "
                              f"(e.g. name = \"torchvision:resnet18\"); only a TorchScript archive needs no name")
        table = {"name": "torchscript", "path": table["checkpoint"],
                 **{k: v for k, v in table.items() if k in ("normalize", "train")}}
    spec = _component(table, "model", reserved={"train"} | MODEL_FILE_KEYS)
    files = ModelFiles(**_settings(ModelFiles, {k: v for k, v in table.items() if k in MODEL_FILE_KEYS}, "model"))
    if files.normalize is not None:
        from advx.checkpoints import normalization

        normalization(files.normalize, None)  # the form now; the channel count when the data is known
    return spec, files


def _check_modes(ev: EvaluateSettings, train_labels: list[str]) -> None:
    """Threat models that cannot run are refused here, before anything trains."""
    if not ev.modes:
        raise ConfigError(f"evaluate.modes: empty; choose one or more of {', '.join(MODES)}")
    if len(set(ev.modes)) != len(ev.modes):
        raise ConfigError(f"evaluate.modes: repeated mode in {list(ev.modes)}")


def _check_ranges(cfg: "ExperimentConfig") -> None:
    """Numbers that would train nothing, divide by zero or evaluate nothing are refused in one
    line naming the key, instead of a traceback or a silently meaningless table."""
    def need(ok: bool, key: str, value: Any, what: str) -> None:
        if not ok:
            raise ConfigError(f"{key}: expected {what}, got {value!r}")

    def finite(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    d = cfg.data
    need(finite(d.train_fraction) and 0 < d.train_fraction <= 1, "data.train_fraction", d.train_fraction, "a number in (0, 1]")
    need(finite(d.val_fraction) and 0 <= d.val_fraction < 1, "data.val_fraction", d.val_fraction, "a number in [0, 1)")
    need(d.test_limit is None or (isinstance(d.test_limit, int) and d.test_limit >= 1), "data.test_limit",
         d.test_limit, "a positive integer")
    need(isinstance(d.subset_seed, int) and not isinstance(d.subset_seed, bool) and d.subset_seed >= 0,
         "data.subset_seed", d.subset_seed,
         "a non-negative integer")
    need(isinstance(d.splits, int) and d.splits >= 1, "data.splits", d.splits, "a positive integer")
    for i, t in enumerate(cfg.trains):
        where = "model.train" if t.label == "base" else f"train[{t.label}]"
        st = t.settings
        earlier = [e.label for e in cfg.trains[:i]]
        need(st.init == "scratch" or st.init in earlier, f"{where}.init", st.init,
             f"'scratch' or the label of an earlier trained model ({', '.join(earlier) or 'none yet'})")
        for key in ("epochs", "batch_size", "step_size"):
            v = getattr(st, key)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, f"{where}.{key}", v, "a positive integer")
        need(finite(st.lr) and st.lr > 0, f"{where}.lr", st.lr, "a positive, finite learning rate")
        for key in ("momentum", "weight_decay", "gamma", "focal_gamma"):
            v = getattr(st, key)
            need(finite(v) and v >= 0, f"{where}.{key}", v, "a non-negative, finite number")
        need(st.schedule != "multistep" or (st.milestones and all(m >= 1 for m in st.milestones)
                                            and list(st.milestones) == sorted(set(st.milestones))),
             f"{where}.milestones", list(st.milestones), "increasing positive epochs for schedule = 'multistep'")
        need(st.train_fraction is None or (finite(st.train_fraction) and 0 < st.train_fraction <= 1),
             f"{where}.train_fraction", st.train_fraction, "a number in (0, 1]")
    ev = cfg.evaluate
    need(isinstance(ev.chunk_size, int) and ev.chunk_size >= 1, "evaluate.chunk_size", ev.chunk_size, "a positive integer")
    need(isinstance(ev.eot, int) and ev.eot >= 1, "evaluate.eot", ev.eot, "a positive integer (1: no EOT)")
    need(ev.randomized_attack in ("autoattack-rand", "none"), "evaluate.randomized_attack", ev.randomized_attack,
         "'autoattack-rand' (the default) or 'none'")
    need(isinstance(ev.randomized_eot, int) and ev.randomized_eot >= 1, "evaluate.randomized_eot",
         ev.randomized_eot, "a positive integer (AutoAttack's rand version uses 20)")
    need(isinstance(ev.randomized_steps, int) and ev.randomized_steps >= 1, "evaluate.randomized_steps",
         ev.randomized_steps, "a positive integer (AutoAttack's rand version uses 100)")
    for dv in cfg.defenses:
        need(isinstance(dv.repeats, int) and dv.repeats >= 1, f"defense[{dv.label}].repeats", dv.repeats,
             "a positive integer (1: one draw)")
        need(dv.eot is None or (isinstance(dv.eot, int) and dv.eot >= 1), f"defense[{dv.label}].eot", dv.eot,
             "a positive integer")


def load_config(source: str | Path | dict[str, Any], overrides: list[str] | None = None) -> ExperimentConfig:
    raw = dict(source) if isinstance(source, dict) else read_toml(source)
    return parse_config(apply_overrides(raw, overrides or []))
