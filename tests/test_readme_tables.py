"""Measured tables in the READMEs are generated from stored JSON and must not drift from it."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "benchmarks" / "readme_tables.py")
readme_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_tables)

BLOCKS = [(path, m) for path in readme_tables.readmes() for m in readme_tables.BLOCK.finditer(path.read_text())]


def test_there_are_generated_tables():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("path,block", BLOCKS, ids=[f"{p.parent.name}:{m.group(3)}" for p, m in BLOCKS])
def test_each_generated_table_equals_its_stored_json(path, block):
    source = ROOT / block.group(2)
    assert source.is_file(), f"{path}: table source {source} is not committed"
    data = json.loads(source.read_text())
    assert data.get("command") or data.get("meta", {}).get("command"), f"{source} does not record its command"
    assert block.group(4) == readme_tables.render(source, block.group(3)), \
        f"{path}: the table from {source} was edited by hand or is stale; run python benchmarks/readme_tables.py"


def test_render_formats_every_row_from_the_json(tmp_path):
    src = tmp_path / "s.json"
    src.write_text(json.dumps({"command": "x", "tables": [
        {"title": "robust accuracy (%) — x", "columns": ["train", "acc"], "rows": [["base", 12.345], ["ft", None]]}]}))
    assert readme_tables.render(src, "robust") == "| train | acc |\n| --- | --- |\n| base | 12.3 |\n| ft | — |\n"
