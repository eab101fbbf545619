"""advx-fixer: small auxiliary networks that fix a frozen model's features (paper 003)."""
