"""The ``advx`` command line: parses, calls the Python API, prints. Bad input exits 2."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import click

from advx.errors import AdvxError, AdvxWarning, StoreWriteError
from advx.interrupt import Terminated, stop_cleanly
from advx.scaffold import KINDS as PLUGIN_KINDS  # no torch, no plugin: start-up stays short


class _Group(click.Group):
    """Turns AdvxError into one clear line and exit code 2 (``--debug`` re-raises)."""

    def main(self, args=None, *rest, **kwargs):
        from advx.invocation import set_command

        set_command(list(sys.argv[1:] if args is None else args))  # the run file records what made it
        try:
            return super().main(args, *rest, **kwargs)
        finally:
            set_command(None)  # a later Python call in this process is not this command

    def invoke(self, ctx: click.Context):
        try:
            with stop_cleanly():
                return super().invoke(ctx)
        except KeyboardInterrupt as exc:  # finished chunks and cells are on disk; the next run resumes
            click.echo("\ninterrupted; re-run the same command to resume", err=True)
            ctx.exit(143 if isinstance(exc, Terminated) else 130)
        except StoreWriteError as exc:  # HDF5 may crash tearing down a half-written file: leave at once
            click.echo(f"error: {exc}", err=True)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(2)
        except AdvxError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_Group)
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
@click.version_option(package_name="advx")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """advx: adversarial-robustness experiments — attacks, training recipes, defences."""
    ctx.ensure_object(dict)["debug"] = debug


@cli.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key (repeatable).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Overrides experiment.device.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run file (default: experiment.output with the config's short hash, e.g. "
                   "runs/quickstart-1a2b3c.h5; experiment.output then links to the newest).")
@click.option("--overwrite", is_flag=True, help="Start the run file afresh, whatever it holds (another config, a damaged file).")
@click.option("--report-dir", type=click.Path(path_type=Path), default=None, help="Also write report files here.")
@click.option("--shard", default=None, metavar="R/W", help="Evaluate only shard R of W (0-based) into "
              "RUN.shards/; join the W shards with `advx merge RUN`. Not needed under torchrun.")
def run(config: Path, overrides: tuple[str, ...], device: str | None, out: Path | None, overwrite: bool,
        report_dir: Path | None, shard: str | None) -> None:
    """Run (or resume) the experiment in CONFIG and print its tables.

    Under torchrun (e.g. `torchrun --nproc_per_node 4 -m advx run X.toml`) training is
    data-parallel and each rank evaluates a shard; rank 0 merges and prints."""
    from advx import load_experiment

    exp = load_experiment(config, list(overrides))
    output = out or exp.default_output()
    results = exp.run(out, device=device, overwrite=overwrite, shard=_parse_shard(shard))
    if results is None:
        if shard is not None:
            click.echo(f"shard {shard} written to {output}.shards/; when all shards are done: advx merge {output}")
        return
    _show(results, output, report_dir)


@cli.command(name="eval")
@click.option("--model", default=None, help="The network: torchvision:NAME, timm:NAME, python:MODULE:FN, "
              "robustbench:NAME or a registered model (advx list model). Omit for a TorchScript --checkpoint.")
@click.option("--model-arg", "model_args", multiple=True, metavar="KEY=VALUE", help="A parameter of the network "
              "(repeatable), e.g. threat_model=L2 or model_dir=models for robustbench:, kwargs={width=2} for python:.")
@click.option("--checkpoint", default=None, help="Its weights: a state-dict .pt, .safetensors or TorchScript file.")
@click.option("--strip-prefix", default="", help="Drop this key prefix from the checkpoint (e.g. module.).")
@click.option("--normalize", default=None, help="The model's input normalisation, applied inside it so eps "
              "stays in pixels: imagenet, cifar10, cifar100, mnist or MEAN,.../STD,...")
@click.option("--data", required=True, help="A dataset (cifar10, torchvision:SVHN, advx list dataset) or an "
              ".npz/.h5 file of test images x and labels y.")
@click.option("--data-root", default=None, help="Folder the dataset is read from (default: data).")
@click.option("--num-classes", type=int, default=None, help="Classes the network scores, for an .npz/.h5 "
              "whose labels miss some (default: one past the largest label).")
@click.option("--n", type=int, default=None,
              help="Evaluate N test images, a seeded class-stratified subset (default: all).")
@click.option("--attack", "attacks", multiple=True, default=("autoattack",), show_default=True,
              help="Attack (repeatable); the per-sample worst case over all of them heads the report.")
@click.option("--eps", default=None, help="Perturbation budget, e.g. 8/255 (default: each attack's own).")
@click.option("--norm", type=click.Choice(["linf", "l2", "l1"]), default=None, help="Threat model for attacks that take one.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.option("--batch-size", default=None, help="Evaluation batch size (default: auto).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run file (default: runs/eval-<hash>.h5).")
@click.option("--overwrite", is_flag=True, help="Start the run file afresh, whatever it holds (another config, a damaged file).")
@click.option("--save-config", type=click.Path(path_type=Path), default=None,
              help="Also write the equivalent experiment TOML here (advx run FILE resumes the same run).")
@click.option("--report-dir", type=click.Path(path_type=Path), default=None, help="Also write report files here.")
def eval_(model: str | None, model_args: tuple[str, ...], checkpoint: str | None, strip_prefix: str, normalize: str | None, data: str,
          data_root: str | None, num_classes: int | None, n: int | None, attacks: tuple[str, ...], eps: str | None, norm: str | None,
          device: str | None, batch_size: str | None, out: Path | None, overwrite: bool, save_config: Path | None,
          report_dir: Path | None) -> None:
    """Evaluate a trained network as loaded — clean and robust accuracy under the standard
    attacks — with no config file; writes the same resumable run file as `advx run`."""
    from advx import load_experiment
    from advx.standard_eval import data_table, eval_config
    from advx.toml_text import dumps

    size: int | str | None = batch_size
    if batch_size is not None and batch_size != "auto":
        if not batch_size.isdigit() or int(batch_size) < 1:
            raise click.BadParameter(f"expected a positive integer or auto, got {batch_size!r}", param_hint="--batch-size")
        size = int(batch_size)
    if n is not None and n < 1:
        raise click.BadParameter(f"expected a positive number of images, got {n}", param_hint="--n")
    table = data_table(data, data_root)
    if num_classes is not None:
        if num_classes < 2 or table["name"] not in ("npz", "hdf5"):
            raise click.BadParameter("takes an integer of at least 2, for an .npz or .h5 file (a named data set "
                                     "knows its classes)", param_hint="--num-classes")
        table["num_classes"] = num_classes
    raw = eval_config(model, table, attacks=attacks, eps=eps, norm=norm, n=n,
                      checkpoint=checkpoint, strip_prefix=strip_prefix, normalize=normalize, batch_size=size,
                      model_params=_key_values(model_args, "--model-arg"))
    exp = load_experiment(raw)
    if save_config is not None:
        save_config.write_text(dumps(raw), encoding="utf-8")
        again = f"advx run {save_config}" + (f" --out {out}" if out else "")
        click.echo(f"config: {save_config} ({again} resumes this run; edit it to grow the experiment)")
    output = out or exp.default_output()
    _show(exp.run(out, device=device, overwrite=overwrite), output, report_dir)


def _key_values(items: tuple[str, ...], option: str) -> dict[str, object]:
    """``KEY=VALUE`` pairs, each value read as TOML (numbers, booleans, tables) or else a string."""
    from advx.overrides import parse_value

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        out[key.strip()] = parse_value(value.strip())
    return out


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        r, w = (int(v) for v in text.split("/"))
    except ValueError:
        raise click.BadParameter(f"expected R/W such as 0/4, got {text!r}", param_hint="--shard") from None
    if not 0 <= r < w:
        raise click.BadParameter(f"expected 0 <= R < W, got {text!r}", param_hint="--shard")
    return r, w


def _show(results, output: Path, report_dir: Path | None) -> None:
    from advx.evaluation.report import print_report, write_report

    print_report(results, click.echo)
    click.echo(f"results: {output}")
    if report_dir is not None:
        for p in write_report(results, report_dir, command=_command()):
            click.echo(f"wrote {p}")


def _command() -> str:
    """The command line as typed (recorded in summary.json beside the tables it produced)."""
    from advx.invocation import invocation

    return invocation()


@cli.command()
@click.argument("run_file", type=click.Path(path_type=Path))
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="For the metric tables.")
@click.option("--report-dir", type=click.Path(path_type=Path), default=None, help="Also write report files here.")
def merge(run_file: Path, device: str | None, report_dir: Path | None) -> None:
    """Join the shards of RUN_FILE (from `advx run --shard R/W` jobs) and print its tables."""
    from advx.evaluation.experiment import merge_run

    _show(merge_run(run_file, device=device), run_file, report_dir)


@cli.command()
@click.argument("run_file", type=click.Path(path_type=Path))
def repair(run_file: Path) -> None:
    """Rewrite a damaged RUN_FILE (a failed write, a copy cut short): keep the header and every
    finished cell that reads back whole; the next `advx run` recomputes the rest. The damaged file
    is kept beside it as RUN_FILE.damaged (one copy, replaced by the next repair)."""
    from advx.evaluation.store import RunStore, repair_run

    if not run_file.is_file():
        raise AdvxError(f"{run_file}: no such run file")
    try:
        with RunStore(run_file, mode="r"):
            click.echo(f"{run_file} opens and needs no repair")
            return
    except AdvxError:
        pass
    kept, dropped, backup = repair_run(run_file)
    click.echo(f"repaired {run_file}: kept {kept} finished cells, {dropped} to recompute; damaged file kept as {backup}")


@cli.command()
@click.argument("run_file", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Folder for report.md, CSV and PNG "
              "(default: RUN_FILE without .h5, plus _report; for a link such as runs/quickstart.h5, the "
              "file it points to, so two runs never share a report folder).")
def report(run_file: Path, out: Path | None) -> None:
    """Print the tables of RUN_FILE and write Markdown, CSV and PNG plots."""
    from advx import open_run
    from advx.evaluation.report import print_report, write_report

    results = open_run(run_file)
    print_report(results, click.echo)
    named = run_file.resolve() if run_file.is_symlink() else run_file  # runs/quickstart.h5 links to the newest run
    folder = out or run_file.with_name(named.stem + "_report")
    try:
        written = write_report(results, folder, command=_command())
    except OSError as exc:  # a read-only folder, a full disk: the tables above stand, the files could not be written
        raise AdvxError(f"{folder}: the report files could not be written ({exc.strerror or exc}); the tables are "
                        f"printed above; choose a writable folder with --out") from None
    for p in written:
        click.echo(f"wrote {p}")


@cli.command()
@click.argument("paper", required=False)
@click.option("--list", "list_", is_flag=True, help="Every paper with its configs, and exit.")
@click.option("--stand-ins", is_flag=True, help="Run the paper's CPU stand-ins (the configs behind the plugin "
              "README's tables) instead of its own setting.")
@click.option("--tiny", is_flag=True, help="A smoke test: 16 test images and one epoch per model.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a key of every config.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Overrides experiment.device (default auto: a GPU when there is one).")
@click.option("--out-dir", type=click.Path(path_type=Path), default=Path("runs/reproduce"), show_default=True,
              help="Run files and report folders, one per config.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Training seeds 0..N-1 per config, every one judged on the same test subset (data.subset_seed).")
@click.option("--plan", "plan_only", is_flag=True,
              help="Print what would run, seed by seed, with its estimated passes and GPU-hours; run nothing.")
@click.option("--only", multiple=True, metavar="CONFIG",
              help="Only this config of the paper (repeatable), e.g. --only mixup_table3_mnist.")
def reproduce(paper: str | None, list_: bool, stand_ins: bool, tiny: bool, overrides: tuple[str, ...],
              device: str | None, out_dir: Path, seeds: int, plan_only: bool, only: tuple[str, ...]) -> None:
    """Run PAPER's experiments at the paper's own setting (000-004 or a plugin name, e.g.
    counteract): every example config whose data is present, each resumable, with a report;
    --stand-ins runs the CPU stand-ins behind the plugin README's tables, --list shows them all,
    --seeds N trains each at seeds 0..N-1, --only CONFIG runs just that config, --plan prints what
    would run and its cost. Exits 2 when no config could run (each skip says what data is missing)."""
    from advx.reproduce import listing, reproduce as run_paper

    if list_:
        for line in listing():
            click.echo(line)
        return
    if paper is None:
        raise AdvxError("advx reproduce needs a paper (000-004 or a plugin name); --list shows them")
    if plan_only:
        from advx.reproduce import plan

        plan(paper, seeds=seeds, tiny=tiny, overrides=list(overrides), stand_ins=stand_ins, echo=click.echo, only=only)
        return
    outcome = run_paper(paper, tiny=tiny, overrides=list(overrides), device=device, out_dir=out_dir, echo=click.echo,
                        stand_ins=stand_ins, seeds=seeds, only=only)
    if not any(v == "done" for v in outcome.values()):
        raise AdvxError(f"paper {paper}: no config could run (its data is missing; see the lines above)")


@cli.command()
@click.argument("run_file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def audit(run_file: Path, as_json: bool) -> None:
    """The seven indicators a reviewer checks in RUN_FILE (silent failures, unfinished cells,
    minimal-norm attacks in robust accuracy, transfer beating adaptive, randomized defences
    without EOT, AutoAttack's own checks, the worst-case gap), each with its verdict; exit 1 when
    one fails."""
    import attrs

    from advx import open_run
    from advx.evaluation.audit import FAIL, audit as run_audit, format_audit

    if not run_file.is_file():
        raise AdvxError(f"{run_file}: no such run file")
    indicators = run_audit(open_run(run_file))
    click.echo(json.dumps([attrs.asdict(i) for i in indicators], indent=2) if as_json else format_audit(indicators))
    failed = [i.name for i in indicators if i.verdict == FAIL]
    if failed:
        click.echo(f"audit failed: {', '.join(failed)}", err=True)
        sys.exit(1)


@cli.group()
def plugin() -> None:
    """Tools for plugin authors."""


def _kind_flags(f):
    """--attack --defense --augmentation --model --dataset: any mix of component kinds."""
    for kind in reversed(PLUGIN_KINDS):
        f = click.option(f"--{kind}", "kinds", flag_value=kind, multiple=True,
                         help=f"A working {kind} to start from.")(f)
    return f


@plugin.command(name="new")
@click.argument("name")
@_kind_flags
@click.option("--kind", "kind_opts", multiple=True, type=click.Choice(PLUGIN_KINDS),
              help="Same as the flags (repeatable).")
@click.option("--dir", "where", type=click.Path(path_type=Path), default=Path("."), show_default=True,
              help="Folder the package is created in.")
def plugin_new(name: str, kinds: tuple[str, ...], kind_opts: tuple[str, ...], where: Path) -> None:
    """Create the package advx-NAME: pyproject with the advx entry point and a test extra, one
    working component of each kind asked for (an attack when none is), tests that load it through
    its entry point and check the contract, and a README. Example:
    advx plugin new kit --attack --defense --augmentation"""
    from advx.scaffold import new_plugin

    root = new_plugin(name, [*kinds, *kind_opts], where)
    click.echo(f"created {root}")
    for p in sorted(root.rglob("*")):
        if p.is_file():
            click.echo(f"  {p.relative_to(root)}")
    click.echo(f'next: cd {root} && pip install -e ".[test]" && python -m pytest tests')


@plugin.command(name="add")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@_kind_flags
def plugin_add(folder: Path, kinds: tuple[str, ...]) -> None:
    """Add a working component of each kind asked for to the package in FOLDER (made by
    advx plugin new): its module, its test and its hook. Example: advx plugin add advx-kit --model"""
    from advx.scaffold import add_kind

    if not kinds:
        raise AdvxError("advx plugin add needs at least one kind: --attack, --defense, --augmentation, --model or "
                        "--dataset")
    for p in add_kind(folder, list(kinds)):
        click.echo(f"wrote {p}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--all", "known", is_flag=True,
              help="Also the known plugins that are not installed, with how to install each.")
def plugins(as_json: bool, known: bool) -> None:
    """List plugins with their versions and what they register."""
    from advx.registry.catalog import known_plugins

    rows = _catalog()["plugins"]
    installed = {row["distribution"] for row in rows}
    missing = [k for k in known_plugins() if k["distribution"] not in installed] if known else []
    if as_json:
        click.echo(json.dumps({"installed": rows, "known": missing} if known else rows, indent=2))
        return
    for row in rows:
        if "problem" in row:
            what = "dropped" if row["provides"] else "skipped"  # some components, or the whole plugin
            click.echo(f"{row['plugin']}  ({row['distribution']} {row['version']})  {what}: {row['problem']}")
        else:
            click.echo(f"{row['plugin']}  ({row['distribution']} {row['version']})")
        for kind, names in row["provides"].items():
            click.echo(f"    {kind}: {', '.join(names)}")
    if known:
        click.echo(f"known, not installed: {len(missing)}" + (" (every known plugin is installed)" if not missing else ""))
        for k in missing:
            click.echo(f"{k['distribution']}  {k['summary']}\n    {k['source']}; install: {k['install']}")


@cli.command(name="list")
@click.argument("kind")
def list_(kind: str) -> None:
    """List the registered components of KIND (model, dataset, attack, training_augmentation,
    inference_defense, evaluator)."""
    from advx.registry.resolve import normalize_kind

    for name, e in _catalog()["kinds"][normalize_kind(kind)].items():
        doc = e["doc"].splitlines()
        click.echo(f"{name:24s} {doc[0] if doc else ''}")


@cli.command()
@click.argument("kind")
@click.argument("name")
def describe(kind: str, name: str) -> None:
    """Print the parameters, defaults and docstring of component NAME of KIND."""
    from advx.registry import catalog

    click.echo(catalog.describe(_catalog(), kind, name))


def _catalog() -> dict:
    """The components and plugins installed, from the catalog cache (no plugin is imported when
    it is current); a plugin that could not be loaded is named in one warning line."""
    from advx.registry import catalog

    data = catalog.load(fresh=bool(os.environ.get("ADVX_DEBUG")))  # --debug: import again, show tracebacks
    if data.get("built_now"):  # loading the plugins just warned about each problem, once
        return data
    for row in data["plugins"]:
        if "problem" in row:
            what = "dropped" if row["provides"] else "is skipped"
            click.echo(f"warning: plugin {row['plugin']!r} ({row['distribution']} {row['version']}) {what}: "
                       f"{row['problem']}", err=True)
    return data


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, AdvxWarning):
        click.echo(f"warning: {message}", err=True)
    else:
        _show_warning(message, category, filename, lineno, file, line)


_show_warning = warnings.showwarning


#: Commands that answer from the catalog: no plugin needs importing to add its own verbs.
_NO_PLUGIN_VERBS = {"list", "describe", "plugins", "plugin"}


def main(argv: list[str] | None = None) -> None:
    """Entry point: add plugin commands (``advx_register_commands``), then run the group."""
    warnings.showwarning = _one_line_warning
    args = sys.argv[1:] if argv is None else list(argv)
    if "--debug" in args:  # plugin import failures print their tracebacks too (advx.registry.manager)
        os.environ["ADVX_DEBUG"] = "1"
    try:
        command = next((a for a in args if not a.startswith("-")), None)
        if not (set(args) & {"--version", "--help", "-h"} and len(args) == 1) and args \
                and command not in _NO_PLUGIN_VERBS:
            from advx.registry import make_plugin_manager  # plugin verbs; --help/--version need no plugins

            make_plugin_manager().hook.advx_register_commands(cli=cli)
    except AdvxError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    cli.main(args=argv, prog_name="advx")


if __name__ == "__main__":  # pragma: no cover
    main()
