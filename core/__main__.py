"""``python -m advx`` (what ``torchrun -m advx run X.toml`` starts on every rank)."""

from advx.cli import main

main()
