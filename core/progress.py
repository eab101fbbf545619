"""Progress bars (tqdm on a terminal; silent when ADVX_PROGRESS=0 or output is not a TTY)."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress(**kwargs):
    flag = os.environ.get("ADVX_PROGRESS")
    disable = (flag == "0") if flag is not None else not sys.stderr.isatty()
    return tqdm(disable=disable, leave=False, dynamic_ncols=True, **kwargs)
