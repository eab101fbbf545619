"""The docs as a user runs them: every fenced bash, python and toml block of README.md and each
plugin README, in the order written, in a temporary copy of the repository whose example configs
are shrunk (1 epoch, 2 attack steps, 8 test images) so the whole tour runs in the suite.

A block may carry a marker on the line above it:
- ``<!-- docs-test: skip: <reason> -->``: not run (e.g. it needs CUDA or several machines);
- ``<!-- docs-test: schema -->``: a TOML sketch of the file format: it must parse, nothing more;
- ``<!-- docs-test: write <path> -->``: the block is a file of a tutorial, written to <path>.
A TOML block without a marker is a fragment of an experiment: it must parse and, merged into a
small config, load (every component name and parameter valid). Bash lines run one by one and must
exit 0 (``pip install ... &&`` prefixes are the set-up the suite already did); python blocks run
in one interpreter each and must not raise.
"""

from __future__ import annotations

import os
import re
import shutil
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from .test_examples import shrink

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted(ROOT.glob("plugins/*/README.md"))]
FENCE = re.compile(r"(?:<!-- docs-test: (?P<marker>[^>]*?) -->\n)?```(?P<lang>bash|python|toml)\n(?P<body>.*?)```",
                   re.S)
BASE = {"data": {"name": "digits", "test_limit": 8}, "model": {"name": "digits-cnn", "train": {"epochs": 1}},
        "attack": [{"name": "fgsm", "eps": 0.1}]}


def blocks(doc: Path) -> list[tuple[str, str, str]]:
    return [(m["lang"], m["body"], (m["marker"] or "").strip()) for m in FENCE.finditer(doc.read_text())]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """The repository's examples and benchmarks, shrunk, in a temporary working folder."""
    import tomllib as t

    from advx import toml_text

    box = tmp_path_factory.mktemp("docs")
    (box / "examples").mkdir()
    for p in (ROOT / "examples").glob("*.toml"):
        full = t.loads(p.read_text())
        if full.get("data", {}).get("name", "digits") != "digits":
            continue  # the docs run only the examples on the embedded data
        raw = shrink(full)
        raw["attack"] = [shrink(a) for a in full.get("attack", [])]  # every attack the docs may name
        (box / "examples" / p.name).write_text(toml_text.dumps(raw))
    shutil.copytree(ROOT / "benchmarks", box / "benchmarks")
    return box


def _run_bash(block: str, cwd: Path) -> None:
    env = {**os.environ, "ADVX_PROGRESS": "0"}
    for line in re.sub(r"\\\n\s*", " ", block).splitlines():
        cmd = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
        cmd = re.sub(r"^pip install [^&]*&&\s*", "", cmd)
        if not cmd or cmd.startswith("pip install") or cmd.startswith("python -m pytest"):
            continue  # set-up the suite already did, and the suite itself
        if re.fullmatch(r"advx [\w./=:,\- ]+", cmd):  # a plain advx command: the same CLI, without a new process
            _run_advx(shlex.split(cmd)[1:], cwd)
            continue
        res = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"`{cmd}` exited {res.returncode}:\n{res.stdout[-1500:]}\n{res.stderr[-1500:]}"


def _run_advx(args: list[str], cwd: Path) -> None:
    """``advx ARGS`` through the console script's own group (plugin verbs added as ``advx.cli.main``
    adds them), in this process: a documented command costs its work, not a Python start-up.
    tests/test_cli.py runs the installed console script itself."""
    from click.testing import CliRunner

    from advx.cli import cli
    from advx.registry import make_plugin_manager

    make_plugin_manager().hook.advx_register_commands(cli=cli)
    old = os.getcwd()
    os.chdir(cwd)
    try:
        res = CliRunner().invoke(cli, args)
    finally:
        os.chdir(old)
    assert res.exit_code == 0, f"`advx {' '.join(args)}` exited {res.exit_code}:\n{res.output[-3000:]}\n{res.exception!r}"


def _run_python(block: str, cwd: Path) -> None:
    """A python block in a namespace of its own, in this process (as ``_run_advx``: the block's work,
    not a Python start-up and a torch import), from the sandbox; torch's generator is left as found."""
    import torch

    old = os.getcwd()
    os.chdir(cwd)
    try:
        with torch.random.fork_rng():
            exec(compile(block, "<README python block>", "exec"), {"__name__": "__main__"})
    except Exception as exc:  # noqa: BLE001 - the block's own failure, shown with the block
        raise AssertionError(f"python block failed:\n{block}\n{exc!r}") from exc
    finally:
        os.chdir(old)


def _check_toml(block: str, marker: str, cwd: Path) -> None:
    import advx

    raw = tomllib.loads(block)  # every TOML block must at least parse
    if marker == "schema":
        return
    merged = {**BASE, **raw}
    if "model" in raw:
        merged["model"] = {**BASE["model"], **raw["model"]}
    advx.load_experiment(merged)  # names and parameters resolve


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_every_block_of_the_doc_runs_in_order(doc, sandbox):
    found = blocks(doc)
    assert found or doc.name != "README.md" or doc.parent != ROOT, "README.md lost its fenced blocks"
    for lang, body, marker in found:
        if marker.startswith("skip:"):
            assert len(marker) > len("skip: "), f"{doc}: a skipped block must say why"
            continue
        if marker.startswith("write "):
            target = sandbox / marker.split(" ", 1)[1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)
            continue
        if lang == "bash":
            _run_bash(body, sandbox)
        elif lang == "python":
            _run_python(body, sandbox)
        else:
            _check_toml(body, marker, sandbox)


def test_the_plugin_tutorial_registers_its_attack(sandbox):
    """README's plugin tutorial, its files written as the docs test above writes them (without
    running the README's other blocks again): its hooks register and the attack passes
    advx.testing.check_attack."""
    for _, body, marker in blocks(ROOT / "README.md"):  # its files, as the docs test writes them
        if marker.startswith("write "):
            target = sandbox / marker.split(" ", 1)[1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)
    code = ("import sys; sys.path.insert(0, 'signnoise/src'); import advx_signnoise.hooks as h; "
            "import advx.testing as t; from advx.data.bundle import as_float; [a] = h.advx_register_attacks(); "
            "m, d = t.digits_model(epochs=1); t.check_attack(a(), m, as_float(d.x_test[:16]), d.y_test[:16])")
    _run_python(code, sandbox)
    tomllib.loads((sandbox / "signnoise" / "pyproject.toml").read_text())
