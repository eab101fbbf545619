"""Progress where people work: the samples bar moves inside a batch and names the ensemble member,
in a terminal (a real pseudo-terminal) and in a notebook without widgets (plain text, no warning,
no escape codes: the text ADVX_PROGRESS=1 writes into a pipe)."""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import advx
from advx import progress
from advx.toml_text import dumps

ONE_BATCH = {  # 40 test images in one batch of 64: every move of the bar before 40/40 is within it
    "experiment": {"name": "bar", "seed": 0},
    "data": {"name": "digits", "test_limit": 40},
    "model": {"name": "digits-cnn", "train": {"epochs": 1}},
    "attack": [{"name": "autoattack", "eps": 0.1, "steps": 20, "queries": 100, "label": "AA"}],
    "evaluate": {"modes": ["oblivious"], "batch_size": 64},
}


def positions(text: str, cell: str) -> list[int]:
    """The bar's sample counts, in order, in the lines of ``cell``."""
    return [int(m) for m in re.findall(rf"{re.escape(cell)}.*?\| *(\d+)/40 ", text.replace("\r", "\n"))]


def test_in_a_notebook_without_widgets_the_bar_is_plain_text_moving_within_the_batch(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(progress.importlib.util, "find_spec", lambda name, *a: None)  # no ipywidgets
    monkeypatch.setenv("ADVX_PROGRESS_INTERVAL", "0")  # every report shows: the test is not timed
    monkeypatch.delenv("ADVX_PROGRESS", raising=False)
    assert progress.mode() == "plain"
    monkeypatch.setattr(progress, "in_notebook", lambda: False)
    monkeypatch.setenv("ADVX_PROGRESS", "1")  # forced into a pipe or file: the same plain text
    assert progress.mode() == "plain"
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.delenv("ADVX_PROGRESS")
    cfg = dict(ONE_BATCH, experiment={"name": "bar", "seed": 0, "cache_dir": str(tmp_path / "cache")})
    advx.load_experiment(cfg).run(tmp_path / "r.h5")
    err = capsys.readouterr().err
    seen = positions(err, "base/none/AA")
    assert seen and seen[-1] == 40
    assert any(0 < n < 40 for n in seen), seen  # moved inside the one batch, not only when it ended
    assert seen == sorted(seen)  # never backwards
    for member in ("apgd-ce", "apgd-t > target 1/9", "fab-t", "square"):
        assert member in err or member.split()[0] in err, member
    assert "\x1b[" not in err and "IProgress" not in err and "train base" in err


def test_in_a_terminal_the_bar_moves_within_the_batch(tmp_path):
    cfg = tmp_path / "c.toml"
    ONE_BATCH["experiment"]["cache_dir"] = str(tmp_path / "cache")
    cfg.write_text(dumps(ONE_BATCH))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # a 160-column terminal
    env = {**{k: v for k, v in os.environ.items() if k != "ADVX_PROGRESS"}, "ADVX_PROGRESS_INTERVAL": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "advx", "run", str(cfg), "--out", str(tmp_path / "t.h5")],
                            stderr=slave, stdout=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=300) == 0
    tty = b"".join(chunks).decode(errors="replace")
    seen = positions(tty, "base/none/AA")
    assert any(0 < n < 40 for n in seen), tty[-2000:]
    assert "apgd-ce" in tty and re.search(r"\[\d\d:\d\d<\d\d:\d\d", tty)  # the member; [elapsed<remaining]
