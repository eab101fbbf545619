"""benchmarks/gpu.sh, the one-call GPU check, runs on a CPU at tiny sizes: every step exits 0 and
writes its JSON, so the script is ready whenever a GPU is lent."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_script_runs_every_step_at_tiny_size_on_cpu(tmp_path):
    env = {**os.environ, "ADVX_GPU_TINY": "1", "PYTHON": sys.executable, "ADVX_PROGRESS": "0",
           "OMP_NUM_THREADS": "1"}
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    steps = json.loads((tmp_path / "gpu_steps.json").read_text())
    assert steps.pop("done") is True
    run_id = steps.pop("run_id")
    assert steps.pop("gpu_run_id") == run_id
    for p in tmp_path.glob("*.json"):  # the logs and every JSON come from this one call
        assert json.loads(p.read_text()).get("gpu_run_id", run_id) == run_id, p.name
    for log in (tmp_path / "logs").glob("*.log"):
        assert log.read_text().startswith(f"run_id {run_id}"), log.name
    limits = {k: v["limit_s"] for k, v in steps.items()}
    assert {k: v["rc"] for k, v in steps.items()} == dict.fromkeys(
        ["quickstart", "autoattack", "attacks_fp32", "attacks_bf16", "eot"], 0), res.stdout[-3000:]
    quick = json.loads((tmp_path / "quickstart_gpu.json").read_text())
    assert quick["wall_s"] > 0 and set(quick["modes_s"]) == {"clean", "oblivious", "adaptive", "black-box"}
    aa = json.loads((tmp_path / "autoattack_reference_gpu.json").read_text())
    row = aa["rows"][0]
    assert {"reference", "advx", "torchattacks"} <= set(row) and row["advx"]["after_each_member"]
    for name in ("attacks_gpu_fp32", "attacks_gpu_bf16", "eot_batching_gpu"):
        assert json.loads((tmp_path / f"{name}.json").read_text())
    # the real (non-tiny) limits fit the 600 s one device command may take, with a margin
    script = (ROOT / "benchmarks" / "gpu.sh").read_text()
    real = script.split("DEV=cuda")[1].split("\nfi\n")[0]
    sizes = dict(re.findall(r"(T_[A-Z]+)=(\d+)", real))
    total = sum(int(sizes[k]) for k in ("T_QS", "T_AA", "T_ATK", "T_ATK", "T_EOT"))  # attacks_fp32 and _bf16
    assert total <= 540, total
    assert limits and "--rounds 3" in real  # advx and the reference timed in 3 interleaved rounds
    # at most 8 files come back from the device machine: the logs stay in their own folder
    assert len([p for p in tmp_path.iterdir() if p.is_file()]) <= 8
